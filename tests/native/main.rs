//! Native tests on the Flex CPU backend with synthetic data (no `../shared` needed).
#![cfg(not(target_family = "wasm"))]

mod adapt;
mod bench;
mod common;
mod conv_grad;
mod crash;
mod data;
mod fixture;
mod fuzz_replay;
mod gff;
mod imageio;
mod init;
mod losses;
mod metrics;
mod network;
mod norm;
mod overfit;
mod pretrained;
mod reduce;
mod sigmoid;
mod trainer;
mod upsample;
mod weights;
