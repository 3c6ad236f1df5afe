//! Importing torchvision ImageNet ResNet-18/34 weights into the encoder.
//!
//! torchvision names (`conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`, ...)
//! are mapped onto this crate's encoder (`encoder.conv1.weight`, `encoder.bn1.running_mean`,
//! `encoder.layer2.0.downsample.conv.weight`, ...); batch-norm `weight`/`bias` become
//! `gamma`/`beta`. A `module.` prefix (DataParallel checkpoints) is stripped, the classifier
//! (`fc.*`) is ignored, and everything else in the encoder must be present with the right
//! shape, or the import fails with a message saying what does not fit.

use burn::store::{ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::model::Scl;
use crate::weights::WeightsError;

/// Regex remappings from torchvision's ResNet names to the encoder's, applied in order.
pub const TORCHVISION_REMAP: [(&str, &str); 5] = [
    (r"^module\.", ""),
    (
        r"^layer(\d)\.(\d+)\.downsample\.0\.",
        "encoder.layer${1}.${2}.downsample.conv.",
    ),
    (
        r"^layer(\d)\.(\d+)\.downsample\.1\.",
        "encoder.layer${1}.${2}.downsample.bn.",
    ),
    (r"^layer(\d)\.", "encoder.layer${1}."),
    (r"^(conv1|bn1)\.", "encoder.${1}."),
];

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
        return Err(err(format!(
            "tensor shapes do not match the {} encoder (ImageNet ResNets have width 64: use --width 64): {}",
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
        .filter(|p| p.starts_with("encoder."))
        .collect();
    let extra: Vec<&String> = result
        .unused
        .iter()
        .filter(|p| p.starts_with("encoder."))
        .collect();
    if !extra.is_empty() {
        return Err(err(format!(
            "the file has encoder blocks this {} encoder does not (is it a deeper ResNet?): {}",
            model.config.depth.name(),
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
            "{} encoder tensors are missing (is it a ResNet-18/34 state dict?), e.g. {}",
            missing.len(),
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

fn safetensors_store(store: SafetensorsStore) -> SafetensorsStore {
    let store = TORCHVISION_REMAP
        .iter()
        .fold(store, |s, (from, to)| s.with_key_remapping(*from, *to));
    store
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false)
}

/// Imports torchvision ResNet weights from the bytes of a `.safetensors` file.
pub fn import_safetensors(
    mut model: Scl,
    bytes: Vec<u8>,
    name: &str,
) -> Result<(Scl, ImportReport), WeightsError> {
    let mut store = safetensors_store(SafetensorsStore::from_bytes(Some(bytes)));
    let result = model
        .load_from(&mut store)
        .map_err(|e| WeightsError::Import {
            name: name.into(),
            detail: e.to_string(),
        })?;
    let report = check(result, name, &model)?;
    Ok((model, report))
}

/// Imports torchvision ResNet weights from a `.pth`/`.pt` (PyTorch) or `.safetensors` file,
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
        let mut store = TORCHVISION_REMAP
            .iter()
            .fold(store, |s, (from, to)| s.with_key_remapping(*from, *to))
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
