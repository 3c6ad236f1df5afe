//! # SCL: Self-supervised Correction Learning
//!
//! A Burn implementation of Zhang, Liu, Yu and Li, "Self-supervised Correction Learning for
//! Semi-supervised Biomedical Image Segmentation" (MICCAI 2021): a dual-task network (shared
//! encoder, segmentation decoder, inpainting decoder, five gated feature fusion
//! modules) that segments coarsely, erases the detected lesion, then segments again while
//! inpainting the erased region. Unlabeled images teach the network through the inpainting
//! loss.
//!
//! The same library runs natively (the `scl` CLI) and in the browser (WebAssembly, WebGPU or
//! the Flex CPU backend).

#![warn(missing_docs)]

pub mod adapt;
pub mod augment;
pub mod backend;
#[cfg(not(target_family = "wasm"))]
pub mod bench;
pub mod config;
#[cfg(not(target_family = "wasm"))]
pub mod data;
pub mod flops;
pub mod imageio;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod pictures;
pub mod pretrained;
pub mod rng;
pub mod train;
#[cfg(target_family = "wasm")]
pub mod web;
pub mod weights;

pub use config::{EncoderKind, Fusion, ModelConfig};
pub use model::{Scl, SclOutput};

/// Errors of this crate. Each message names the problem in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid model configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An input tensor the network cannot take.
    #[error("invalid input: {0}")]
    Input(String),
    /// An image that cannot be read or written.
    #[error("{0}")]
    Image(String),
    /// A weights file that cannot be used.
    #[error("{0}")]
    Weights(#[from] weights::WeightsError),
    /// A device (GPU, or the CPU backend) that could not run or return a computation.
    #[error("device: {0}")]
    Device(String),
    /// A file-system error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
