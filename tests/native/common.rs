use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use image::{GrayImage, Luma, Rgb, RgbImage};
use scl::{ModelConfig, Scl};

pub fn dev() -> Device {
    Device::flex()
}

pub fn tensor4(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

pub fn scalar(t: Tensor<1>) -> f64 {
    to_vec(t)[0] as f64
}

/// A deterministic pseudo-random image batch in [0, 1].
pub fn image(b: usize, h: usize, w: usize, seed: u32, device: &Device) -> Tensor<4> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let v = (0..b * 3 * h * w)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 10_000) as f32 / 10_000.0
        })
        .collect();
    tensor4(v, [b, 3, h, w], device)
}

pub fn light() -> ModelConfig {
    ModelConfig::preset("r18-w8").unwrap()
}

/// A network with deterministic weights (tests run in parallel, so the device RNG cannot be
/// seeded per test): convolution weights uniform in +-sqrt(3 / fan_in) (unit-variance
/// preserving) and biases uniform in +-0.05 from a fixed generator; batch-norm parameters and
/// statistics keep their initial values (1, 0, 0, 1).
pub fn model(cfg: &ModelConfig, device: &Device) -> Scl {
    deterministic(Scl::new(cfg, device).unwrap(), 1)
}

pub fn deterministic<M: Module>(m: M, seed: u32) -> M {
    struct Det {
        state: u32,
        path: Vec<String>,
    }
    impl Det {
        fn next(&mut self) -> f32 {
            let s = &mut self.state;
            *s ^= *s << 13;
            *s ^= *s >> 17;
            *s ^= *s << 5;
            (*s as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32
        }
    }
    impl ModuleMapper for Det {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let shape = p.lazy_shape();
            let dims = shape.dims::<D>();
            let n: usize = dims.iter().product();
            let scale = match (D, self.path.last().map(String::as_str)) {
                (4, _) => (3.0 / dims[1..].iter().product::<usize>() as f32).sqrt(),
                (1, Some("bias")) => 0.05,
                _ => return p,
            };
            let values: Vec<f32> = (0..n).map(|_| self.next() * scale).collect();
            p.map(|t| {
                let fresh = Tensor::from_data(TensorData::new(values, dims), &t.device());
                if t.is_require_grad() {
                    fresh.require_grad()
                } else {
                    fresh
                }
            })
        }
    }
    m.map(&mut Det {
        state: seed.wrapping_mul(2_654_435_761) | 1,
        path: Vec::new(),
    })
}

/// A deterministic value in [-1, 1) for index `i` of the stream `seed` (a splitmix-style hash).
pub fn noise(i: usize, seed: u64) -> f64 {
    let mut s = (i as u64 + 1).wrapping_mul(6_364_136_223_846_793_005) ^ seed;
    s ^= s >> 29;
    s = s.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    s ^= s >> 32;
    (s % 20_000) as f64 / 10_000.0 - 1.0
}

pub fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected} (tolerance {tol})"
    );
}

/// An empty dataset folder (`images/`, `masks/`) under the temp dir, unique to this process.
pub fn dataset_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("images")).unwrap();
    std::fs::create_dir_all(d.join("masks")).unwrap();
    d
}

/// A `w x h` image of a red disc of radius `r` centred at (`cx`, `cy`) on blue, and its mask.
pub fn disc_at(w: u32, h: u32, cx: f32, cy: f32, r: f32) -> (RgbImage, GrayImage) {
    let inside = |x: u32, y: u32| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
    (
        RgbImage::from_fn(w, h, |x, y| {
            if inside(x, y) {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 200])
            }
        }),
        GrayImage::from_fn(w, h, |x, y| Luma([if inside(x, y) { 255 } else { 0 }])),
    )
}

/// A JSON file read into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The ResNet encoder of a network built from a ResNet preset.
pub fn resnet(m: &Scl) -> &scl::model::resnet::ResNet {
    m.encoder.as_resnet().expect("a ResNet encoder")
}
