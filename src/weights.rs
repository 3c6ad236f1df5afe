//! Saving and loading the network's weights (Burnpack `.bpk`, optionally f16) and importing
//! torchvision ImageNet ResNet-18/34 weights into the encoder.
//!
//! A weights file is a Burnpack file whose metadata carries the model configuration
//! (`scl.config`, JSON) and the storage precision (`scl.precision`), so that a file can be
//! loaded without knowing its configuration, and loading it into a different configuration is
//! refused with a message naming both.

use burn::prelude::*;
use burn::store::burn_pack::{self, Reader};
use burn::store::{BurnpackStore, HalfPrecisionAdapter, ModuleSnapshot};
use burn::tensor::Bytes;

use crate::config::ModelConfig;
use crate::model::Scl;

/// Metadata key of the model configuration.
pub const META_CONFIG: &str = "scl.config";
/// Metadata key of the storage precision (`f32` or `f16`).
pub const META_PRECISION: &str = "scl.precision";
/// Metadata key identifying the file as SCL weights.
pub const META_FORMAT: &str = "scl.format";
/// Value of [`META_FORMAT`].
pub const FORMAT: &str = "scl-weights-1";

/// Storage precision of a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats (exact).
    F32,
    /// 16-bit floats for the convolution weights (half the size; batch-norm statistics stay
    /// f32, since their variances can underflow f16).
    F16,
}

impl Precision {
    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// Why a weights file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{name}: {message}")]
    Io {
        /// The file.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// Not a Burnpack file at all (another format, an image, text...).
    #[error("{0}: not a weights file (it is not in Burnpack .bpk format)")]
    NotBurnpack(String),
    /// An image file given where weights were expected.
    #[error("{name}: this is a {format} image, not a weights file (.bpk)")]
    IsImage {
        /// File name.
        name: String,
        /// The image format, e.g. `Png`.
        format: String,
    },
    /// A Burnpack file cut short.
    #[error("{name}: the weights file is truncated or damaged ({detail})")]
    Truncated {
        /// The file.
        name: String,
        /// Details from the reader.
        detail: String,
    },
    /// A Burnpack file without this tool's metadata (made by another program).
    #[error("{0}: a Burnpack file, but not SCL weights (no scl.config metadata)")]
    NotScl(String),
    /// Weights made for another network configuration.
    #[error("{name}: these weights are for a {file} network, but the model is {model}")]
    ConfigMismatch {
        /// The file.
        name: String,
        /// The file's configuration.
        file: String,
        /// The model's configuration.
        model: String,
    },
    /// Tensors missing or of the wrong shape.
    #[error("{name}: the weights do not fit the network: {detail}")]
    Tensors {
        /// The file.
        name: String,
        /// Details.
        detail: String,
    },
    /// A problem importing ImageNet encoder weights.
    #[error("{name}: cannot import ImageNet encoder weights: {detail}")]
    Import {
        /// The file.
        name: String,
        /// Details.
        detail: String,
    },
}

fn pack_error(name: &str, e: burn_pack::Error) -> WeightsError {
    use burn_pack::Error as E;
    let name = name.to_string();
    match e {
        E::InvalidMagicNumber => WeightsError::NotBurnpack(name),
        E::InvalidHeader | E::InvalidVersion => WeightsError::NotBurnpack(name),
        E::IoError(m) => WeightsError::Io { name, message: m },
        E::ValidationError(m) if m.contains("truncated") => {
            WeightsError::Truncated { name, detail: m }
        }
        E::ValidationError(m) | E::TensorNotFound(m) | E::TensorBytesSizeMismatch(m) => {
            WeightsError::Tensors { name, detail: m }
        }
        other => WeightsError::Truncated {
            name,
            detail: other.to_string(),
        },
    }
}

/// Serialises the model's weights (with its configuration) to Burnpack bytes.
pub fn to_bytes(model: &Scl, precision: Precision) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_string(&model.config).expect("config serialises");
    let mut store = BurnpackStore::from_bytes(None)
        .metadata(META_FORMAT, FORMAT)
        .metadata(META_CONFIG, config)
        .metadata(META_PRECISION, precision.name());
    if precision == Precision::F16 {
        store = store.with_to_adapter(HalfPrecisionAdapter::new());
    }
    let err = |e| pack_error("weights", e);
    model.save_into(&mut store).map_err(err)?;
    Ok(store.get_bytes().map_err(err)?.to_vec())
}

/// Whether `bytes` start like a Burnpack file (its magic number, "BURN" little-endian).
pub fn looks_like_weights(bytes: &[u8]) -> bool {
    bytes.starts_with(b"NRUB")
}

/// Reads the configuration and precision stored in a weights file's bytes.
pub fn read_header(bytes: &[u8], name: &str) -> Result<(ModelConfig, Precision), WeightsError> {
    header(bytes, name).map(|h| (h.config, h.precision))
}

/// What a weights file says about itself.
struct Header {
    config: ModelConfig,
    precision: Precision,
    /// Written before the encoder became a choice: the ResNet encoder's tensors are stored at
    /// `encoder.*` instead of `encoder.ResNet.*`.
    legacy_paths: bool,
}

fn header(bytes: &[u8], name: &str) -> Result<Header, WeightsError> {
    if bytes.is_empty() {
        return Err(WeightsError::Io {
            name: name.into(),
            message: "the file is empty".into(),
        });
    }
    if !looks_like_weights(bytes)
        && let Ok(format) = image::guess_format(bytes)
    {
        return Err(WeightsError::IsImage {
            name: name.into(),
            format: format!("{format:?}"),
        });
    }
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| pack_error(name, e))?;
    let meta = reader.metadata();
    let config = meta
        .get(META_CONFIG)
        .ok_or_else(|| WeightsError::NotScl(name.into()))?;
    let legacy_paths = config.contains("\"depth\"");
    let config = parse_config(config).map_err(|e| WeightsError::Truncated {
        name: name.into(),
        detail: format!("unreadable configuration: {e}"),
    })?;
    config.validate().map_err(|e| WeightsError::Truncated {
        name: name.into(),
        detail: e.to_string(),
    })?;
    let precision = match meta.get(META_PRECISION).map(String::as_str) {
        Some("f16") => Precision::F16,
        _ => Precision::F32,
    };
    Ok(Header {
        config,
        precision,
        legacy_paths,
    })
}

/// Parses a stored configuration, including files written before the encoder choice existed
/// (they say `"depth": "ResNet18"` and have no `e5_channels`/`decoder_channels`).
fn parse_config(text: &str) -> Result<ModelConfig, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    if let Some(obj) = v.as_object_mut()
        && !obj.contains_key("encoder")
        && let Some(depth) = obj.remove("depth")
    {
        obj.insert("encoder".into(), depth);
    }
    serde_json::from_value(v)
}

/// Loads weights into `model` (whose configuration must match the file's).
pub fn load_into(mut model: Scl, bytes: &[u8], name: &str) -> Result<Scl, WeightsError> {
    let Header {
        config,
        precision,
        legacy_paths,
    } = header(bytes, name)?;
    if config != model.config {
        return Err(WeightsError::ConfigMismatch {
            name: name.into(),
            file: config.describe(),
            model: model.config.describe(),
        });
    }
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())));
    if legacy_paths {
        store = store.with_remap_pattern(r"^encoder\.", "encoder.ResNet.");
    }
    if precision == Precision::F16 {
        store = store.with_from_adapter(HalfPrecisionAdapter::new());
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| pack_error(name, e))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(WeightsError::Tensors {
            name: name.into(),
            detail: result.to_string(),
        });
    }
    Ok(model)
}

/// Builds the network described by a weights file and loads the weights onto `device`.
pub fn from_bytes(bytes: &[u8], name: &str, device: &Device) -> Result<Scl, WeightsError> {
    let (config, _) = read_header(bytes, name)?;
    let model = Scl::new(&config, device).map_err(|e| WeightsError::Truncated {
        name: name.into(),
        detail: e.to_string(),
    })?;
    load_into(model, bytes, name)
}

/// Writes the model's weights to `path` (native only).
#[cfg(not(target_family = "wasm"))]
pub fn save_file(
    model: &Scl,
    path: &std::path::Path,
    precision: Precision,
) -> Result<(), WeightsError> {
    let bytes = to_bytes(model, precision)?;
    write_atomic(path, &bytes).map_err(|e| WeightsError::Io {
        name: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the
/// new one, never a part of either: the bytes go to `<path>.tmp`, are flushed to disk, and the
/// temporary file is renamed over `path` (atomic on POSIX file systems).
#[cfg(not(target_family = "wasm"))]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    // Test-only hook: a pause between the write and the rename, so that a crash test can kill
    // the process in the middle of a checkpoint (tests/native/crash.rs).
    if let Some(ms) = std::env::var("SCL_TEST_SAVE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    std::fs::rename(&tmp, path)
}

/// Reads a weights file and builds its network on `device` (native only).
#[cfg(not(target_family = "wasm"))]
pub fn load_file(path: &std::path::Path, device: &Device) -> Result<Scl, WeightsError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| WeightsError::Io {
        name: name.clone(),
        message: e.to_string(),
    })?;
    from_bytes(&bytes, &name, device)
}
