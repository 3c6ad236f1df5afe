//! Folder datasets, splits, partitions and augmentation on small generated files.

use image::{GrayImage, Rgb, RgbImage};
use scl::augment::{Augment, augment};
use scl::data::{Dataset, Partition, load_pair};
use scl::rng::Rng;

use crate::common::{dataset_dir, disc_at};

/// A disc centred in a `w x h` image, radius a quarter of the shorter side.
fn disc(w: u32, h: u32) -> (RgbImage, GrayImage) {
    disc_at(w, h, w as f32 / 2.0, h as f32 / 2.0, w.min(h) as f32 / 4.0)
}

#[test]
fn mask_patterns_and_bad_pairs() {
    let d = dataset_dir("data-patterns");
    let (img, mask) = disc(40, 30);
    for (i, m) in [
        ("a.png", "a.png"),
        ("b.png", "b_segmentation.png"),
        ("c.jpg", "c-exp1.png"),
        ("d.png", "d_mask.bmp"),
        ("e.png", ""),
    ] {
        img.save(d.join("images").join(i)).unwrap();
        if !m.is_empty() {
            mask.save(d.join("masks").join(m)).unwrap();
        }
    }
    img.save(d.join("images/f.png")).unwrap();
    disc(20, 20).1.save(d.join("masks/f.png")).unwrap();
    std::fs::write(d.join("images/g.png"), b"not a png").unwrap();
    mask.save(d.join("masks/g.png")).unwrap();

    let ds = Dataset::scan(&d).unwrap();
    let stems: Vec<&str> = ds.pairs.iter().map(|p| p.stem.as_str()).collect();
    assert_eq!(stems, ["a", "b", "c", "d", "e", "f", "g"]);
    let mask_of = |s: &str| ds.pairs.iter().find(|p| p.stem == s).unwrap().mask.clone();
    assert!(mask_of("b").unwrap().ends_with("b_segmentation.png"));
    assert!(mask_of("c").unwrap().ends_with("c-exp1.png"));
    assert!(mask_of("d").unwrap().ends_with("d_mask.bmp"));
    assert!(mask_of("e").is_none());
    let pair = |s: &str| ds.pairs.iter().find(|p| p.stem == s).unwrap().clone();
    let (i, m) = load_pair(&pair("a"), 64).unwrap();
    assert_eq!((i.width(), m.height()), (64, 64));
    assert_eq!(m.get_pixel(32, 32)[0], 255);
    assert_eq!(m.get_pixel(0, 0)[0], 0);
    let e = load_pair(&pair("e"), 64).unwrap_err().to_string();
    assert!(e.contains("e: no mask"), "{e}");
    let e = load_pair(&pair("f"), 64).unwrap_err().to_string();
    assert!(e.contains("40x30 but its mask is 20x20"), "{e}");
    let e = load_pair(&pair("g"), 64).unwrap_err().to_string();
    assert!(e.contains("g.png"), "{e}");
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn splits_and_partitions_are_seeded_and_disjoint() {
    let d = dataset_dir("data-splits");
    let (img, mask) = disc(8, 8);
    for i in 0..10 {
        img.save(d.join(format!("images/{i}.png"))).unwrap();
        mask.save(d.join(format!("masks/{i}.png"))).unwrap();
    }
    let ds = Dataset::scan(&d).unwrap();
    let val = ds.split("val", 0.2, 3).unwrap();
    let train = ds.split("train", 0.2, 3).unwrap();
    assert_eq!((val.len(), train.len()), (2, 8));
    assert!(val.iter().all(|v| !train.contains(v)));
    assert_eq!(ds.split("val", 0.2, 3).unwrap(), val);
    assert!(ds.split("test", 0.2, 3).is_err());

    let p = Partition::select(&train, 0.25, 7);
    assert_eq!((p.labeled.len(), p.unlabeled.len()), (2, 6));
    assert!(p.labeled.iter().all(|l| !p.unlabeled.contains(l)));
    assert_eq!(Partition::select(&train, 0.25, 7), p);
    assert_ne!(Partition::select(&train, 0.25, 8), p);

    std::fs::write(
        d.join("split.json"),
        r#"{"train": ["1", "2", "zz"], "val": ["3"]}"#,
    )
    .unwrap();
    let ds = Dataset::scan(&d).unwrap();
    let train = ds.split("train", 0.2, 3).unwrap();
    let (found, missing) = ds.select(&train);
    assert_eq!(found.len(), 2);
    assert_eq!(missing, vec!["zz".to_string()]);
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn augmentation_keeps_image_and_mask_aligned() {
    let (img, mask) = disc(64, 64);
    let plain = Augment {
        crop: 64,
        flip: 0.0,
        rotate: 0.0,
        max_angle: 90.0,
        zoom: 0.0,
        zoom_range: (0.9, 1.1),
    };
    let s = augment(&img, Some(&mask), &plain, &mut Rng::new(1));
    assert_eq!(s.image, scl::imageio::rgb_to_chw(&img));
    // A horizontal flip of a pattern that is not symmetric.
    let ramp = RgbImage::from_fn(4, 4, |x, y| Rgb([x as u8 * 10, y as u8, 0]));
    let flip = Augment {
        crop: 4,
        flip: 1.0,
        ..plain
    };
    let f = augment(&ramp, None, &flip, &mut Rng::new(1));
    // Horizontal and vertical flips both happen (p = 1): red (x ramp) and green (y ramp)
    // both run backwards.
    assert_eq!(
        f.image[..4].to_vec(),
        vec![30.0 / 255.0, 20.0 / 255.0, 10.0 / 255.0, 0.0]
    );
    assert_eq!(f.image[16], 3.0 / 255.0);
    assert_eq!(f.image[16 + 12], 0.0);

    let spec = Augment::spec(48);
    for seed in 0..20 {
        let s = augment(&img, Some(&mask), &spec, &mut Rng::new(seed));
        let m = s.mask.unwrap();
        assert_eq!(m.len(), 48 * 48);
        // The disc is red (R = 1): wherever the mask says lesion the image is mostly red.
        let agree = m
            .iter()
            .enumerate()
            .filter(|(i, v)| (**v == 1.0) == (s.image[*i] >= 0.5))
            .count();
        assert!(
            agree as f64 >= 0.97 * m.len() as f64,
            "seed {seed}: {agree} of {}",
            m.len()
        );
        // Same seed, same sample.
        let again = augment(&img, Some(&mask), &spec, &mut Rng::new(seed));
        assert_eq!(again.image, s.image);
    }
}
