//! Native tests on the Flex CPU backend with synthetic data (no `../shared` needed).

mod common;
mod data;
mod gff;
mod imageio;
mod losses;
mod metrics;
mod network;
mod overfit;
mod pretrained;
mod weights;
