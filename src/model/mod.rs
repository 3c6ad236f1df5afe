//! The SCL network and its parts.

pub mod decoder;
pub mod dropout;
pub mod encoder;
pub mod fused_norm;
pub mod fusion;
pub mod layers;
pub mod mobilenet;
pub mod network;
pub mod norm;
pub mod resnet;

pub use network::{FineParts, MAX_SIDE, STRIDE, Scl, SclOutput};

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;

/// Counts trainable parameters, as PyTorch's `sum(p.numel() for p in m.parameters())` would:
/// Burn's `num_params` also counts batch-norm running statistics, which are buffers, not
/// parameters.
pub fn trainable_params<M: Module>(module: &M) -> usize {
    #[derive(Default)]
    struct Counter {
        path: Vec<String>,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let buffer = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !buffer {
                self.count += param.lazy_shape().num_elements();
            }
        }
    }
    let mut c = Counter::default();
    module.visit(&mut c);
    c.count
}
