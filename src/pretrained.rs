//! Importing torchvision ImageNet weights into the encoder (SPEC.md "ImageNet-initialised light
//! encoder"): ResNet-18/34 and MobileNetV2.
//!
//! torchvision names are mapped onto this crate's encoder: ResNet's `conv1.weight`,
//! `layer2.0.downsample.0.weight`, ... become `encoder.ResNet.conv1.weight`,
//! `encoder.ResNet.layer2.0.downsample.conv.weight`, ...; MobileNetV2's flat (older torchvision)
//! `features.N.conv.K` keys become `encoder.MobileNetV2.blocks.{N-1}.{expand,depthwise,project}`
//! (see [`mobilenet_v2_remap`]). Batch-norm `weight`/`bias` become `gamma`/`beta`. A `module.`
//! prefix (DataParallel checkpoints) is stripped, the classifier (`fc.*`) and MobileNetV2's
//! unused `features.18` are ignored, and every other encoder tensor must be present with the
//! right shape, or the import fails with a message saying what does not fit. The optional e5
//! adapter of MobileNetV2 is not part of ImageNet's network and keeps its fresh weights.

use burn::store::{ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::config::EncoderKind;
use crate::model::Scl;
use crate::weights::WeightsError;

/// Regex remappings from torchvision's ResNet names to the encoder's, applied in order.
pub const TORCHVISION_REMAP: [(&str, &str); 5] = [
    (r"^module\.", ""),
    (
        r"^layer(\d)\.(\d+)\.downsample\.0\.",
        "encoder.ResNet.layer${1}.${2}.downsample.conv.",
    ),
    (
        r"^layer(\d)\.(\d+)\.downsample\.1\.",
        "encoder.ResNet.layer${1}.${2}.downsample.bn.",
    ),
    (r"^layer(\d)\.", "encoder.ResNet.layer${1}."),
    (r"^(conv1|bn1)\.", "encoder.ResNet.${1}."),
];

/// MobileNetV2's torchvision keys to this crate's names, generated per block: the stem
/// (`features.0.0`/`.1`), block 1 without expansion (`conv.0, .1, .3, .4`: depthwise and
/// projection) and blocks 2..17 (`conv.0, .1, .3, .4, .6, .7`: expansion, depthwise,
/// projection).
pub fn mobilenet_v2_remap() -> Vec<(String, String)> {
    let to = |rest: &str| format!("encoder.MobileNetV2.{rest}");
    let mut r = vec![
        (r"^module\.".to_string(), String::new()),
        (r"^features\.0\.0\.".into(), to("stem.conv.")),
        (r"^features\.0\.1\.".into(), to("stem.bn.")),
    ];
    for n in 1..=17 {
        let parts: &[(usize, &str)] = if n == 1 {
            &[
                (0, "depthwise.conv"),
                (1, "depthwise.bn"),
                (3, "project.conv"),
                (4, "project.bn"),
            ]
        } else {
            &[
                (0, "expand.conv"),
                (1, "expand.bn"),
                (3, "depthwise.conv"),
                (4, "depthwise.bn"),
                (6, "project.conv"),
                (7, "project.bn"),
            ]
        };
        for (k, name) in parts {
            r.push((
                format!(r"^features\.{n}\.conv\.{k}\."),
                to(&format!("blocks.{}.{name}.", n - 1)),
            ));
        }
    }
    r
}

fn remap_rules(config: &crate::config::ModelConfig) -> Vec<(String, String)> {
    match config.encoder {
        EncoderKind::MobileNetV2 => mobilenet_v2_remap(),
        EncoderKind::ResNet18 | EncoderKind::ResNet34 => TORCHVISION_REMAP
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
}

/// Encoder tensors that no ImageNet file has (the MobileNetV2 e5 adapter).
fn not_imported(path: &str) -> bool {
    path.starts_with("encoder.MobileNetV2.adapter.")
}

/// What an import loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Encoder tensors set from the file.
    pub loaded: usize,
    /// Tensors of the file that were not used (the classifier, counters).
    pub ignored: Vec<String>,
}

fn check(result: ApplyResult, name: &str, model: &Scl) -> Result<ImportReport, WeightsError> {
    let err = |detail: String| WeightsError::Import {
        name: name.into(),
        detail,
    };
    if !result.errors.is_empty() {
        let hint = match model.config.encoder {
            EncoderKind::MobileNetV2 => "is it a MobileNetV2 1.0 state dict?",
            _ => "ImageNet ResNets have width 64: use --width 64",
        };
        return Err(err(format!(
            "tensor shapes do not match the {} encoder ({hint}): {}",
            model.config.describe(),
            result
                .errors
                .iter()
                .take(3)
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| p.starts_with("encoder.") && !not_imported(p))
        .collect();
    let extra: Vec<&String> = result
        .unused
        .iter()
        .filter(|p| p.starts_with("encoder."))
        .collect();
    if !extra.is_empty() {
        return Err(err(format!(
            "the file has encoder tensors this {} encoder does not (a deeper ResNet, or another architecture?): {}",
            model.config.encoder.name(),
            extra
                .iter()
                .take(3)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !missing.is_empty() {
        return Err(err(format!(
            "{} encoder tensors are missing (is it a torchvision {} state dict?), e.g. {}",
            missing.len(),
            model.config.encoder.name(),
            missing
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let loaded = result
        .applied
        .iter()
        .filter(|p| p.starts_with("encoder."))
        .count();
    if loaded == 0 {
        return Err(err("no encoder tensor found in the file".into()));
    }
    Ok(ImportReport {
        loaded,
        ignored: result.unused,
    })
}

fn safetensors_store(
    store: SafetensorsStore,
    config: &crate::config::ModelConfig,
) -> SafetensorsStore {
    let store = remap_rules(config)
        .into_iter()
        .fold(store, |s, (from, to)| s.with_key_remapping(from, to));
    store
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false)
}

/// Imports torchvision weights for the model's encoder from the bytes of a `.safetensors` file.
pub fn import_safetensors(
    mut model: Scl,
    bytes: Vec<u8>,
    name: &str,
) -> Result<(Scl, ImportReport), WeightsError> {
    let mut store = safetensors_store(SafetensorsStore::from_bytes(Some(bytes)), &model.config);
    let result = model
        .load_from(&mut store)
        .map_err(|e| WeightsError::Import {
            name: name.into(),
            detail: e.to_string(),
        })?;
    let report = check(result, name, &model)?;
    Ok((model, report))
}

/// Imports torchvision encoder weights from a `.pth`/`.pt` (PyTorch) or `.safetensors` file,
/// recognised by its content.
#[cfg(not(target_family = "wasm"))]
pub fn import_file(
    model: Scl,
    path: &std::path::Path,
) -> Result<(Scl, ImportReport), WeightsError> {
    use burn::store::PytorchStore;
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| WeightsError::Io {
        name: name.clone(),
        message: e.to_string(),
    })?;
    if bytes.is_empty() {
        return Err(WeightsError::Io {
            name,
            message: "the file is empty".into(),
        });
    }
    // PyTorch checkpoints are zip archives ("PK") or legacy pickles (0x80 protocol byte).
    let is_torch = bytes.starts_with(b"PK") || bytes[0] == 0x80;
    if !is_torch {
        return import_safetensors(model, bytes, &name);
    }
    // torchvision saves a flat state dict; training checkpoints often nest it under a key.
    let mut model = model;
    let mut last = None;
    for key in [None, Some("state_dict"), Some("model")] {
        let mut store = PytorchStore::from_file(path);
        if let Some(k) = key {
            store = store.with_top_level_key(k);
        }
        let mut store = remap_rules(&model.config)
            .into_iter()
            .fold(store, |s, (from, to)| s.with_key_remapping(from, to))
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false);
        let r = model.load_from(&mut store);
        let found = matches!(&r, Ok(r) if !r.applied.is_empty());
        last = Some(r);
        if found {
            break;
        }
    }
    let result = last.expect("at least one attempt");
    let result = result.map_err(|e| WeightsError::Import {
        name: name.clone(),
        detail: e.to_string(),
    })?;
    let report = check(result, &name, &model)?;
    Ok((model, report))
}
