//! Metrics against hand-counted confusion matrices.

use scl::metrics::*;

use crate::common::assert_close;

#[test]
fn confusion_and_scores_by_hand() {
    let pred = [0.9, 0.6, 0.1, 0.4, 0.5];
    let truth = [1.0, 0.0, 0.0, 1.0, 1.0];
    let c = Confusion::from_maps(&pred, &truth);
    assert_eq!(
        c,
        Confusion {
            tp: 2,
            fp: 1,
            tn: 1,
            fn_: 1
        }
    );
    let s = c.scores();
    assert_close(s.dice, 4.0 / 6.0, 1e-12, "Dice");
    assert_close(s.iou, 0.5, 1e-12, "IoU");
    assert_close(s.accuracy, 0.6, 1e-12, "Acc");
    assert_close(s.recall, 2.0 / 3.0, 1e-12, "Rec");
    assert_close(s.specificity, 0.5, 1e-12, "Spe");
    assert_close(s.precision, 2.0 / 3.0, 1e-12, "Pre");
}

#[test]
fn empty_prediction_and_empty_truth_score_one() {
    let s = Confusion::from_maps(&[0.0; 4], &[0.0; 4]).scores();
    assert_eq!(s.values(), [1.0; 6]);
}

#[test]
fn empty_prediction_on_a_lesion() {
    let s = Confusion::from_maps(&[0.0, 0.0, 0.0, 0.0], &[1.0, 0.0, 0.0, 0.0]).scores();
    assert_eq!(s.dice, 0.0);
    assert_eq!(s.iou, 0.0);
    assert_eq!(s.recall, 0.0);
    assert_eq!(s.specificity, 1.0);
    assert_eq!(s.accuracy, 0.75);
    // No positive prediction: no false positive either (0/0 counts as 1).
    assert_eq!(s.precision, 1.0);
}

#[test]
fn all_lesion_image_fully_predicted() {
    let s = Confusion::from_maps(&[1.0; 3], &[1.0; 3]).scores();
    assert_eq!(s.values(), [1.0; 6]);
    // Prediction on an empty truth: Dice 0, specificity 0, recall 1 (nothing to find).
    let s = Confusion::from_maps(&[1.0, 1.0], &[0.0, 0.0]).scores();
    assert_eq!((s.dice, s.specificity, s.recall), (0.0, 0.0, 1.0));
}

#[test]
fn summary_mean_and_std() {
    let a = Confusion {
        tp: 1,
        fp: 0,
        tn: 1,
        fn_: 0,
    }
    .scores(); // Dice 1
    let b = Confusion {
        tp: 1,
        fp: 1,
        tn: 0,
        fn_: 0,
    }
    .scores(); // Dice 2/3
    let c = Confusion {
        tp: 0,
        fp: 1,
        tn: 1,
        fn_: 0,
    }
    .scores(); // Dice 0
    let s = Summary::of(&[a, b, c]);
    assert_eq!(s.count, 3);
    let mean: f64 = (1.0 + 2.0 / 3.0) / 3.0;
    let var = ((1.0 - mean).powi(2) + (2.0 / 3.0 - mean).powi(2) + mean.powi(2)) / 3.0;
    assert_close(s.dice.mean, mean, 1e-12, "mean Dice");
    assert_close(s.dice.std, var.sqrt(), 1e-12, "std Dice");
    assert_eq!(Summary::of(&[]).count, 0);
}

#[test]
fn corrections_by_hand() {
    // Every (coarse, fine, truth) combination once: one pixel of each kind of change.
    let coarse = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let fine = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
    let truth = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let a = Correction::from_maps(&coarse, &fine, &truth);
    assert_eq!(
        a,
        Correction {
            pixels: 8,
            added_lesion: 1,
            added_background: 1,
            removed_background: 1,
            removed_lesion: 1
        }
    );
    // Nothing changed.
    let b = Correction::from_maps(&[1.0, 0.0], &[0.9, 0.2], &[1.0, 0.0]);
    assert_eq!((b.added(), b.removed(), b.pixels), (0, 0, 2));
    // Two lesion pixels added, nothing removed.
    let c = Correction::from_maps(&[0.0, 0.0, 1.0, 0.0], &[1.0, 0.6, 1.0, 0.0], &[1.0; 4]);
    assert_eq!((c.added_lesion, c.added_background, c.removed()), (2, 0, 0));

    let s = CorrectionSummary::of(&[a, b, c]);
    assert_eq!((s.count, s.changed), (3, 2));
    // Added shares 2/8, 0, 2/4; removed shares 2/8, 0, 0.
    assert_close(s.added.mean, 0.25, 1e-12, "added mean");
    assert_close(s.added.std, (0.125f64 / 3.0).sqrt(), 1e-12, "added std");
    assert_close(s.removed.mean, 1.0 / 12.0, 1e-12, "removed mean");
    // Pooled: 3 of the 4 added pixels are lesion, 1 of the 2 removed is background.
    assert_close(s.added_right, 0.75, 1e-12, "added right");
    assert_close(s.removed_right, 0.5, 1e-12, "removed right");
    // Nothing changed anywhere: both shares count as right (nothing was done wrongly).
    let none = CorrectionSummary::of(&[b]);
    assert_eq!(
        (none.changed, none.added_right, none.removed_right),
        (0, 1.0, 1.0)
    );
}

#[test]
fn dice_changes_count_images_stage_two_helped_and_hurt() {
    let score = |tp, fp, fn_| {
        Confusion {
            tp,
            fp,
            tn: 10,
            fn_,
        }
        .scores()
    };
    let ev = scl::train::Evaluation {
        // Dice: 1.0 vs 0.8 (up), 0.5 vs 1.0 (down), 1.0 vs 1.0 (same), 0.8 vs 0.5 (up).
        fine: vec![
            score(4, 0, 0),
            score(1, 1, 1),
            score(2, 0, 0),
            score(2, 1, 0),
        ],
        coarse: vec![
            score(2, 1, 0),
            score(2, 0, 0),
            score(3, 0, 0),
            score(1, 1, 1),
        ],
        corrections: Vec::new(),
    };
    assert_eq!(ev.dice_changes(), (2, 1));
}
