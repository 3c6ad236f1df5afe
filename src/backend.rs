//! Choosing where the network runs.

use burn::prelude::*;

use crate::Error;

/// The execution backends this crate is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (SIMD; multi-threaded natively, WASM SIMD in the browser).
    Flex,
    /// wgpu: Vulkan/Metal/DX12 natively, WebGPU in the browser.
    Wgpu,
}

impl Backend {
    /// Parses a backend name (`flex`, `wgpu`).
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name.to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(Backend::Flex),
            "wgpu" | "gpu" | "vulkan" | "webgpu" => Ok(Backend::Wgpu),
            other => Err(Error::Config(format!(
                "unknown device '{other}': use 'flex' (CPU) or 'wgpu' (GPU)"
            ))),
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
        }
    }
}

/// A tensor's values on the host as f32, read synchronously: native backends, or Flex in the
/// browser (a WebGPU read must be awaited: `web::read`).
pub fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, Error> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Config(format!("reading predictions back: {e:?}")))
}

/// Initialises `backend` natively. wgpu initialisation fails with a clear error when there is
/// no adapter (no GPU and no software Vulkan driver such as Mesa's lavapipe), or when this
/// build was made without the `gpu` feature.
#[cfg(not(target_family = "wasm"))]
pub fn init(backend: Backend) -> Result<Device, Error> {
    match backend {
        Backend::Flex => Ok(Device::flex()),
        #[cfg(feature = "gpu")]
        Backend::Wgpu => Device::wgpu_options().init().map_err(|e| {
            Error::Config(format!(
                "no wgpu adapter could be initialised ({e}); install a GPU driver or Mesa's \
                 software Vulkan (Debian: mesa-vulkan-drivers), or use --device flex"
            ))
        }),
        #[cfg(not(feature = "gpu"))]
        Backend::Wgpu => Err(Error::Config(
            "this scl was built without the GPU backend: rebuild it with \
             `cargo build --release --features gpu`, or use --device flex"
                .into(),
        )),
    }
}

/// Initialises `backend` in the browser (WebGPU must be initialised asynchronously, once per
/// page); natively the same as [`init`].
pub async fn init_async(backend: Backend) -> Result<Device, Error> {
    match backend {
        Backend::Flex => Ok(Device::flex()),
        #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
        Backend::Wgpu => Device::wgpu_options()
            .init_async()
            .await
            .map_err(|e| Error::Config(format!("no WebGPU adapter could be initialised ({e})"))),
        #[cfg(all(target_family = "wasm", target_feature = "atomics"))]
        Backend::Wgpu => Err(Error::Config(
            "this build of the page has no WebGPU (it is the multi-threaded CPU build)".into(),
        )),
        #[cfg(not(target_family = "wasm"))]
        Backend::Wgpu => init(Backend::Wgpu),
    }
}
