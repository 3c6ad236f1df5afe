//! `scl bench` end to end on a small network: both measurements run and report what was asked
//! (sizes, counts, an ordered min <= median <= max), and a bad argument is a clear error.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scl"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run scl bench")
}

/// The (median, min, max) of a line `... median X ms (min Y, max Z, n N) ...`.
fn stats(line: &str) -> (f64, f64, f64, usize) {
    let num = |key: &str| -> f64 {
        let rest = &line[line
            .find(key)
            .unwrap_or_else(|| panic!("no '{key}' in {line}"))
            + key.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap();
        rest[..end].parse().unwrap()
    };
    (
        num("median "),
        num("(min "),
        num("max "),
        num(", n ") as usize,
    )
}

#[test]
fn both_measurements_report_what_was_asked() {
    let out = bench(&[
        "--preset",
        "r18-w8",
        "--size",
        "64",
        "--crop",
        "32",
        "--iters",
        "3",
        "--labeled",
        "1",
        "--unlabeled",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{text}"))
            .to_string()
    };
    for l in [
        line("two-stage forward 64x64 batch 1"),
        line("training iteration 1+1 at 32x32"),
    ] {
        let (median, min, max, n) = stats(&l);
        assert_eq!(n, 3, "{l}");
        assert!(min > 0.0 && min <= median && median <= max, "{l}");
    }
}

#[test]
fn zero_iterations_is_a_clear_error() {
    let out = bench(&["--preset", "r18-w8", "--iters", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--iters must be at least 1"), "{err}");
}
