//! The fused batch norm's backward step for `Autodiff<B>` (see `mod.rs`): the forward runs on
//! the inner backend and records `x`, `y`, the statistics and `gamma`; the backward calls
//! [`FusedNormBackward::bn_act_backward`] once for all three gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend};

use super::{FusedNorm, FusedNormBackward};

/// The recorded step: inputs `x`, `gamma`, `beta`.
#[derive(Debug)]
struct BnActStep;

/// `x`, `y`, `stats`, `gamma`, `eps`, `lo`, `hi`, `batch`.
type State<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
    f32,
    f32,
    bool,
);

impl<B: FusedNormBackward> Backward<B, 3> for BnActStep {
    type State = State<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, y, stats, gamma, eps, lo, hi, batch) = ops.state;
        let dxgb = B::bn_act_backward(x, y, stats, gamma, grad, eps, lo, hi, batch);
        for (parent, g) in ops.parents.into_iter().zip(dxgb) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: FusedNorm + FusedNormBackward, C: CheckpointStrategy> FusedNorm for Autodiff<B, C> {
    fn bn_stats(x: FloatTensor<Self>, groups: usize) -> FloatTensor<Self> {
        Self::from_inner(B::bn_stats(x.into_primitive(), groups))
    }

    fn bn_act(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        lo: f32,
        hi: f32,
        batch: bool,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let stats = stats.into_primitive();
        let forward = |x, stats, gamma| B::bn_act(x, stats, gamma, beta, eps, lo, hi, batch);
        match BnActStep
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(x.clone(), stats.clone(), gamma.clone());
                prep.finish((x, y.clone(), stats, gamma, eps, lo, hi, batch), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, stats, gamma)),
        }
    }
}
