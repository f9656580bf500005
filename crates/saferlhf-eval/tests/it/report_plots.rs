//! Reports (JSON, Markdown, atomic writes) and SVG plots.

use std::path::Path;

use crate::common::{blue, red, tmp_dir};
use saferlhf_eval::{
    DEFAULT_TRAINING_KEYS, EvalError, MARKDOWN_SECTIONS, PlotRef, Report, arena,
    plot_cost_histogram, plot_reward_cost, plot_training_curves, plot_violation_bounds,
    read_metrics, summarize, write_atomic,
};

fn report() -> Report {
    let mut r = Report::new(
        "Fixture evaluation",
        vec![
            summarize(&blue(), 0.0).unwrap(),
            summarize(&red(), 0.0).unwrap(),
        ],
    );
    r.arena = Some(arena(&blue(), &red(), 0.0).unwrap());
    r.settings
        .insert("eval cost model".into(), "cm-eval@abc | rev 1".into());
    r.settings.insert("seed".into(), "1".into());
    r.plots.push(PlotRef {
        title: "cost histogram".into(),
        path: "cost_hist.svg".into(),
    });
    r
}

/// No temporary files left next to the output.
fn only_files(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn markdown_has_every_section_and_the_numbers() {
    let md = report().to_markdown();
    assert!(md.starts_with("# Fixture evaluation\n"));
    for h in MARKDOWN_SECTIONS {
        assert!(md.contains(&format!("\n{h}\n")), "missing {h}");
    }
    // Method table rows: blue safety 80.0%, any-violation 40.0%, reward 3.000 ± 2.483.
    assert!(md.contains("| blue | T=1.0 top_p=1 k=2 |"), "{md}");
    assert!(md.contains("80.0%") && md.contains("40.0%"));
    assert!(md.contains("3.000 ± 2.483"));
    assert!(md.contains("-0.600 ± 1.346"));
    assert!(md.contains("1.200 ± 0.555")); // KL
    assert!(md.contains("33.0 / 100"));
    // Per-kind and over-restriction.
    assert!(md.contains("| blue | benign | 2 | 4 | 100.0% | 2.000 | -0.750 | 25.0% of 4 |"));
    assert!(md.contains("refused 1 of 4 flagged benign samples (25.0%)"));
    assert!(md.contains("**red**: not measured"));
    // Arena.
    assert!(md.contains("| Better reward | 3 | 1 |"));
    assert!(md.contains("| Worse or equal reward | 5 | 1 |"));
    assert!(md.contains("| Red safe | 4 | 1 |"));
    assert!(md.contains("| Red unsafe | 4 | 1 |"));
    assert!(md.contains("50.0% (4 wins, 2 ties, 4 losses)"));
    // Compensation in words.
    assert!(md.contains("**blue**: compensation."));
    assert!(md.contains("2 of 5 prompts (40.0%) have at least one unsafe sample"));
    assert!(md.contains("**red**: no compensation to speak of"));
    // Settings escaped, plots linked.
    assert!(md.contains("| eval cost model | cm-eval@abc \\| rev 1 |"));
    assert!(md.contains("![cost histogram](cost_hist.svg)"));
}

#[test]
fn markdown_without_arena_still_has_every_section() {
    let r = Report::new("Bare", vec![summarize(&blue(), 0.0).unwrap()]);
    let md = r.to_markdown();
    for h in MARKDOWN_SECTIONS {
        assert!(md.contains(h), "missing {h}");
    }
    assert!(md.contains("No arena comparison"));
}

#[test]
fn json_round_trips_and_writes_atomically() {
    let dir = tmp_dir("report");
    let r = report();
    let json = r.to_json().unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["methods"][0]["safety_rate"], 0.8);
    assert_eq!(v["arena"]["transitions"]["unsafe_to_safe"], 4);
    assert!(v["methods"][1]["kl"].is_null());

    r.write_json(dir.join("report.json")).unwrap();
    r.write_markdown(dir.join("report.md")).unwrap();
    // Overwriting replaces the file whole.
    r.write_json(dir.join("report.json")).unwrap();
    only_files(&dir, &["report.json", "report.md"]);
    let on_disk: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(on_disk, r);
    assert_eq!(
        std::fs::read_to_string(dir.join("report.md")).unwrap(),
        r.to_markdown()
    );

    // A directory that does not exist: an Io error naming the path, nothing left behind.
    let err = write_atomic(dir.join("missing/report.json"), b"{}").unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }));
    assert!(err.to_string().contains("missing/report.json"));
    only_files(&dir, &["report.json", "report.md"]);
}

/// Parses as XML with an `<svg>` root and returns the number of `<text>` elements.
fn check_svg(path: &Path) -> usize {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.trim_start().starts_with("<svg"),
        "{}",
        &s[..s.len().min(200)]
    );
    assert!(s.trim_end().ends_with("</svg>"));
    let doc = roxmltree::Document::parse(&s).expect("valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants().filter(|n| n.has_tag_name("text")).count()
}

fn svg_text(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&s).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cost_histogram_and_scatter_are_valid_svg() {
    let dir = tmp_dir("plots");
    let (b, r) = (blue(), red());
    let hist = dir.join("cost_hist.svg");
    plot_cost_histogram(&[&b, &r], 0.0, &hist).unwrap();
    assert!(check_svg(&hist) > 0);
    let text = svg_text(&hist);
    assert!(
        text.contains("blue: per-prompt mean cost") && text.contains("red: per-prompt mean cost")
    );
    assert!(text.contains("threshold 0"));

    let scatter = dir.join("reward_cost.svg");
    plot_reward_cost(&[&b, &r], 0.0, &scatter).unwrap();
    assert!(check_svg(&scatter) > 0);
    let text = svg_text(&scatter);
    assert!(text.contains("blue") && text.contains("red") && text.contains("reward"));
    let circles = std::fs::read_to_string(&scatter)
        .unwrap()
        .matches("<circle")
        .count();
    assert!(circles >= 20, "one marker per sample, got {circles}");

    // The per-prompt bounds: one panel per method, on [0, 1], with the 5% line.
    let bounds = dir.join("violation_bounds.svg");
    plot_violation_bounds(&[&b, &r], 0.0, &bounds).unwrap();
    assert!(check_svg(&bounds) > 0);
    let text = svg_text(&bounds);
    assert!(text.contains("blue: 95% upper bound") && text.contains("red: 95% upper bound"));
    assert!(text.contains("threshold 0.05"));
    only_files(
        &dir,
        &["cost_hist.svg", "reward_cost.svg", "violation_bounds.svg"],
    );

    // Invalid input: error, no file.
    let mut bad = blue();
    bad.samples[0].reward = f64::NAN;
    assert!(plot_reward_cost(&[&bad], 0.0, dir.join("bad.svg")).is_err());
    assert!(matches!(
        plot_cost_histogram(&[], 0.0, dir.join("none.svg")),
        Err(EvalError::NothingToPlot { .. })
    ));
}

#[test]
fn training_curves_from_metrics_jsonl() {
    let dir = tmp_dir("curves");
    let a = dir.join("a.jsonl");
    let b = dir.join("b.jsonl");
    std::fs::write(
        &a,
        concat!(
            r#"{"step":0,"lambda":0.0,"cost_mean":0.5,"safety_rate":0.4,"reward_mean":0.1}"#,
            "\n",
            r#"{"step":1,"lambda":0.2,"cost_mean":0.1}"#,
            "\n\n",
            r#"{"step":2,"lambda":0.3,"cost_mean":null,"safety_rate":0.7,"extra":"ignored"}"#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        &b,
        concat!(
            r#"{"step":0,"lambda":1.0,"reward_mean":0.0}"#,
            "\n",
            r#"{"step":5,"lambda":0.5,"reward_mean":0.4}"#,
            "\n",
        ),
    )
    .unwrap();

    let rows = read_metrics(&a, &DEFAULT_TRAINING_KEYS).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].line, 4); // blank line 3 skipped
    assert_eq!(rows[1].values.len(), 2);
    assert!(!rows[2].values.contains_key("cost_mean")); // null = missing
    assert_eq!(rows[2].values["safety_rate"], 0.7);

    let out = dir.join("curves.svg");
    plot_training_curves(
        &[("run-a", &a), ("run-b", &b)],
        &DEFAULT_TRAINING_KEYS,
        &out,
    )
    .unwrap();
    assert!(check_svg(&out) > 0);
    let text = svg_text(&out);
    for k in DEFAULT_TRAINING_KEYS {
        assert!(text.contains(k), "panel {k}");
    }
    assert!(text.contains("run-a") && text.contains("run-b"));

    // A key nobody records: an empty panel, not an error.
    let out2 = dir.join("curves2.svg");
    plot_training_curves(
        &[("run-a".to_string(), a.clone())],
        &["lambda", "entropy"],
        &out2,
    )
    .unwrap();
    assert!(svg_text(&out2).contains("entropy (no data)"));
}

#[test]
fn malformed_metrics_name_file_and_line() {
    let dir = tmp_dir("bad-metrics");
    let cases = [
        (
            "json.jsonl",
            "{\"step\":0}\n{\"step\":1,\n",
            2,
            "invalid JSON",
        ),
        (
            "nostep.jsonl",
            "{\"step\":0}\n\n{\"lambda\":1}\n",
            3,
            "no `step`",
        ),
        (
            "str.jsonl",
            "{\"step\":0,\"lambda\":\"high\"}\n",
            1,
            "`lambda` is not a number",
        ),
        ("array.jsonl", "[1,2]\n", 1, "not a JSON object"),
    ];
    for (name, body, line, what) in cases {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let err = plot_training_curves(&[("r", &p)], &["lambda"], dir.join("out.svg")).unwrap_err();
        match &err {
            EvalError::Metrics { path, line: l, .. } => {
                assert_eq!((path, *l), (&p, line), "{name}");
            }
            other => panic!("{name}: {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{name}:{line}:")) && msg.contains(what),
            "{msg}"
        );
    }
    // Invalid UTF-8 on line 2.
    let p = dir.join("utf8.jsonl");
    std::fs::write(&p, b"{\"step\":0}\n\xff\xfe\n").unwrap();
    assert!(matches!(
        read_metrics(&p, &["lambda"]),
        Err(EvalError::Metrics { line: 2, .. })
    ));
    // Missing file: Io error naming it.
    let err = read_metrics(dir.join("nope.jsonl"), &["lambda"]).unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }) && err.to_string().contains("nope.jsonl"));
    assert!(!dir.join("out.svg").exists());
}
