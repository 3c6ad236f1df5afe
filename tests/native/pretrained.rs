//! Importing torchvision-named ResNet weights from a small generated `.safetensors` file.

use std::collections::BTreeMap;

use safetensors::tensor::{Dtype, TensorView};
use scl::model::resnet::ResNet;
use scl::{EncoderKind, ModelConfig};

use crate::common::*;

/// The torchvision state-dict names and shapes of a ResNet with `blocks` and base width `w`.
fn torchvision_tensors(blocks: [usize; 4], w: usize) -> Vec<(String, Vec<usize>)> {
    let mut t = vec![("conv1.weight".to_string(), vec![w, 3, 7, 7])];
    let bn = |t: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            t.push((format!("{p}.{s}"), vec![c]));
        }
    };
    bn(&mut t, "bn1", w);
    let widths = [w, 2 * w, 4 * w, 8 * w];
    let mut cin = w;
    for (l, (&n, &c)) in blocks.iter().zip(&widths).enumerate() {
        for b in 0..n {
            let p = format!("layer{}.{b}", l + 1);
            let i = if b == 0 { cin } else { c };
            t.push((format!("{p}.conv1.weight"), vec![c, i, 3, 3]));
            bn(&mut t, &format!("{p}.bn1"), c);
            t.push((format!("{p}.conv2.weight"), vec![c, c, 3, 3]));
            bn(&mut t, &format!("{p}.bn2"), c);
            if b == 0 && l > 0 {
                t.push((format!("{p}.downsample.0.weight"), vec![c, i, 1, 1]));
                bn(&mut t, &format!("{p}.downsample.1"), c);
            }
        }
        cin = c;
    }
    t.push(("fc.weight".into(), vec![1000, 8 * w]));
    t.push(("fc.bias".into(), vec![1000]));
    t
}

/// A value pattern unique to each tensor (index k) and element (j).
fn value(k: usize, j: usize) -> f32 {
    k as f32 + (j % 97) as f32 / 1000.0
}

fn write(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .enumerate()
        .map(|(k, (n, s))| {
            let count: usize = s.iter().product();
            let bytes = (0..count).flat_map(|j| value(k, j).to_le_bytes()).collect();
            (n.clone(), s.clone(), bytes)
        })
        .collect();
    let views: BTreeMap<String, TensorView> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn index_of(tensors: &[(String, Vec<usize>)], name: &str) -> usize {
    tensors.iter().position(|(n, _)| n == name).unwrap()
}

#[test]
fn torchvision_names_land_in_the_encoder() {
    let device = dev();
    let cfg = light(); // ResNet-18, width 8
    let tensors = torchvision_tensors(EncoderKind::ResNet18.blocks(), 8);
    let bytes = write(&tensors);
    let m = model(&cfg, &device);
    let (m, report) = scl::pretrained::import_safetensors(m, bytes, "tv.safetensors").unwrap();
    // Everything but fc.weight and fc.bias.
    assert_eq!(report.loaded, tensors.len() - 2);
    assert!(report.ignored.iter().any(|n| n.contains("fc")));
    let enc: &ResNet = resnet(&m);
    let check = |name: &str, got: Vec<f32>| {
        let k = index_of(&tensors, name);
        for (j, v) in got.iter().enumerate().take(200) {
            assert_eq!(*v, value(k, j), "{name}[{j}]");
        }
    };
    check("conv1.weight", to_vec(enc.conv1.weight.val()));
    check("bn1.weight", to_vec(enc.bn1.gamma.val()));
    check("bn1.bias", to_vec(enc.bn1.beta.val()));
    check("bn1.running_var", to_vec(enc.bn1.running_var.value()));
    check(
        "layer1.1.conv2.weight",
        to_vec(enc.layer1[1].conv2.weight.val()),
    );
    let ds = enc.layer3[0].downsample.as_ref().unwrap();
    check("layer3.0.downsample.0.weight", to_vec(ds.conv.weight.val()));
    check("layer3.0.downsample.1.bias", to_vec(ds.bn.beta.val()));
    check(
        "layer4.1.bn2.running_mean",
        to_vec(enc.layer4[1].bn2.running_mean.value()),
    );
}

#[test]
fn mismatched_files_are_refused_with_a_reason() {
    let device = dev();
    // Width 64 (real ImageNet weights) into a width-8 encoder.
    let wide = write(&torchvision_tensors(EncoderKind::ResNet18.blocks(), 16));
    let e =
        scl::pretrained::import_safetensors(model(&light(), &device), wide, "wide").unwrap_err();
    assert!(e.to_string().contains("shapes do not match"), "{e}");
    // ResNet-34 into ResNet-18.
    let deep = write(&torchvision_tensors(EncoderKind::ResNet34.blocks(), 8));
    let e =
        scl::pretrained::import_safetensors(model(&light(), &device), deep, "deep").unwrap_err();
    assert!(e.to_string().contains("a deeper ResNet"), "{e}");
    // ResNet-18 into ResNet-34: blocks missing.
    let cfg34 = ModelConfig::preset("r18-w8")
        .unwrap()
        .with_encoder(EncoderKind::ResNet34);
    let shallow = write(&torchvision_tensors(EncoderKind::ResNet18.blocks(), 8));
    let e = scl::pretrained::import_safetensors(model(&cfg34, &device), shallow, "shallow")
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // Not a safetensors file.
    let e =
        scl::pretrained::import_safetensors(model(&light(), &device), b"hello".to_vec(), "text")
            .unwrap_err();
    assert!(e.to_string().contains("text"), "{e}");
}
