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
