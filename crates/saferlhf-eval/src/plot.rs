//! SVG plots (plotters, SVG backend): per-prompt mean-cost histograms, reward–cost scatter,
//! training curves from `metrics.jsonl` files.
//!
//! Every plot is rendered into memory and written with [`write_atomic`], so a failed plot leaves
//! no half-written file. Text is emitted as SVG `<text>` elements; plotters' built-in text-size
//! estimate is used for layout, so no font files are read (see the crate docs).

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{EvalError, Result};
use crate::input::MethodSamples;
use crate::report::write_atomic;
use crate::summary::{Summary, summarize};

/// The metrics keys plotted by default by [`plot_training_curves`].
pub const DEFAULT_TRAINING_KEYS: [&str; 4] = ["lambda", "cost_mean", "safety_rate", "reward_mean"];

const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 280;
const FONT: &str = "sans-serif";

fn color(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> EvalError + '_ {
    move |e| EvalError::Plot {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// A chart of these plots: f64 on both axes, drawn into an SVG string.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The cost threshold as a red line between the two points, with its legend entry.
fn draw_threshold<'b>(
    chart: &mut Chart<'b, 'b>,
    line: [(f64, f64); 2],
    threshold: f64,
    path: &Path,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(line, RED.stroke_width(2)))
        .map_err(plot_err(path))?
        .label(format!("threshold {threshold}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    Ok(())
}

/// The legend box of a chart's labelled series.
fn draw_legend<'b>(chart: &mut Chart<'b, 'b>, path: &Path) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(path))
}

/// A range [lo, hi] that contains all of `values` (and `extra`), padded by 5%, never empty.
fn padded_range(values: impl IntoIterator<Item = f64>, extra: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().chain(extra.iter().copied()) {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span < 1e-12 {
        let pad = if lo.abs() > 1e-12 {
            0.1 * lo.abs()
        } else {
            1.0
        };
        (lo - pad, hi + pad)
    } else {
        (lo - 0.05 * span, hi + 0.05 * span)
    }
}

/// The summary of each method (which validates its samples); an error when there is none.
fn summaries(
    methods: &[&MethodSamples],
    cost_threshold: f64,
    path: &Path,
) -> Result<Vec<crate::summary::Summary>> {
    if methods.is_empty() {
        return Err(EvalError::NothingToPlot {
            path: path.to_path_buf(),
            detail: "no methods given".into(),
        });
    }
    methods
        .iter()
        .map(|m| summarize(m, cost_threshold))
        .collect()
}

/// `(method name, values(summary))` for each method.
fn per_prompt_values(
    methods: &[&MethodSamples],
    cost_threshold: f64,
    path: &Path,
    values: impl Fn(&Summary) -> Vec<f64>,
) -> Result<Vec<(String, Vec<f64>)>> {
    Ok(summaries(methods, cost_threshold, path)?
        .iter()
        .zip(methods)
        .map(|(s, m)| (m.name.clone(), values(s)))
        .collect())
}

/// Histogram of per-prompt mean cost, one panel per method (same bins and axes in every
/// panel), with the cost threshold as a vertical red line. Bins: ⌈√n⌉ clamped to 5..=40, n the
/// largest prompt count.
pub fn plot_cost_histogram(
    methods: &[&MethodSamples],
    cost_threshold: f64,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let per_method = per_prompt_values(methods, cost_threshold, path, Summary::prompt_mean_costs)?;
    let range = padded_range(
        per_method.iter().flat_map(|(_, v)| v.iter().copied()),
        &[cost_threshold],
    );
    let n_max = per_method.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    let panels = HistogramPanels {
        range,
        n_bins: ((n_max as f64).sqrt().ceil() as usize).clamp(5, 40),
        caption: "per-prompt mean cost",
        x_desc: "mean cost over the prompt's samples",
        line: cost_threshold,
    };
    panels.draw(&per_method, path)
}

/// Histogram of the per-prompt one-sided 95% Clopper–Pearson upper bounds on the violation
/// probability (the "Per-prompt certificates" of the report), one panel per method, 20 bins on
/// [0, 1], with ε = 5% as a vertical red line: prompts left of it are certified below 5%.
pub fn plot_violation_bounds(
    methods: &[&MethodSamples],
    cost_threshold: f64,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let per_method = per_prompt_values(methods, cost_threshold, path, |s| {
        s.per_prompt.iter().map(|p| p.violation_upper).collect()
    })?;
    let panels = HistogramPanels {
        range: (0.0, 1.0),
        n_bins: 20,
        caption: "95% upper bound on each prompt's P(unsafe)",
        x_desc: "one-sided Clopper-Pearson upper bound",
        line: 0.05,
    };
    panels.draw(&per_method, path)
}

/// One histogram panel per method, same bins and axes in each, with a vertical red line.
struct HistogramPanels<'a> {
    range: (f64, f64),
    n_bins: usize,
    caption: &'a str,
    x_desc: &'a str,
    line: f64,
}

impl HistogramPanels<'_> {
    fn draw(&self, per_method: &[(String, Vec<f64>)], path: &Path) -> Result<()> {
        let (x0, x1) = self.range;
        let n_bins = self.n_bins;
        let width = (x1 - x0) / n_bins as f64;
        let counts: Vec<Vec<usize>> = per_method
            .iter()
            .map(|(_, v)| {
                let mut c = vec![0usize; n_bins];
                for &x in v {
                    let b = (((x - x0) / width).floor().max(0.0) as usize).min(n_bins - 1);
                    c[b] += 1;
                }
                c
            })
            .collect();
        let y_max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.1;

        let mut svg = String::new();
        {
            let e = plot_err(path);
            let height = PANEL_HEIGHT * per_method.len() as u32;
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(&e)?;
            let panels = root.split_evenly((per_method.len(), 1));
            for (i, (panel, (name, _))) in panels.iter().zip(per_method).enumerate() {
                let mut chart = ChartBuilder::on(panel)
                    .caption(format!("{name}: {}", self.caption), (FONT, 18))
                    .margin(10)
                    .x_label_area_size(35)
                    .y_label_area_size(50)
                    .build_cartesian_2d(x0..x1, 0.0..y_max)
                    .map_err(&e)?;
                chart
                    .configure_mesh()
                    .x_desc(self.x_desc)
                    .y_desc("prompts")
                    .draw()
                    .map_err(&e)?;
                let c = color(i);
                chart
                    .draw_series(counts[i].iter().enumerate().filter(|(_, n)| **n > 0).map(
                        |(b, &n)| {
                            let lo = x0 + b as f64 * width;
                            Rectangle::new([(lo, 0.0), (lo + width, n as f64)], c.mix(0.6).filled())
                        },
                    ))
                    .map_err(&e)?;
                let line = [(self.line, 0.0), (self.line, y_max)];
                draw_threshold(&mut chart, line, self.line, path)?;
                draw_legend(&mut chart, path)?;
            }
            root.present().map_err(&e)?;
        }
        write_atomic(path, svg.as_bytes())
    }
}

/// Scatter of reward (x) against cost (y), every sample, one colour per method, with the
/// threshold as a horizontal red line (points above it are unsafe).
pub fn plot_reward_cost(
    methods: &[&MethodSamples],
    cost_threshold: f64,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    summaries(methods, cost_threshold, path)?; // validation
    let all = || methods.iter().flat_map(|m| m.samples.iter());
    let (x0, x1) = padded_range(all().map(|s| s.reward), &[]);
    let (y0, y1) = padded_range(all().map(|s| s.cost), &[cost_threshold]);

    let mut svg = String::new();
    {
        let e = plot_err(path);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 650)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Reward vs cost per sample", (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("reward")
            .y_desc("cost (above the red line: unsafe)")
            .draw()
            .map_err(&e)?;
        for (i, m) in methods.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(
                    m.samples
                        .iter()
                        .map(|s| Circle::new((s.reward, s.cost), 3, c.mix(0.6).filled())),
                )
                .map_err(&e)?
                .label(m.name.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        }
        let line = [(x0, cost_threshold), (x1, cost_threshold)];
        draw_threshold(&mut chart, line, cost_threshold, path)?;
        draw_legend(&mut chart, path)?;
        root.present().map_err(&e)?;
    }
    write_atomic(path, svg.as_bytes())
}

/// One line of a metrics file: its step and the requested keys present on it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// 1-based line number in the file.
    pub line: usize,
    /// The `step` field.
    pub step: f64,
    /// Requested keys that are present with a number on this line.
    pub values: BTreeMap<String, f64>,
}

/// Reads a `metrics.jsonl` file: one JSON object per line with a numeric `step`. Of the other
/// fields only `keys` are read; each may be absent or `null` (not recorded on that step) or a
/// number. Blank lines are skipped. Errors name the file and the 1-based line: unreadable
/// line, invalid JSON, not an object, missing or non-numeric `step`, non-numeric key.
pub fn read_metrics(path: impl AsRef<Path>, keys: &[&str]) -> Result<Vec<MetricsRow>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, detail: String| EvalError::Metrics {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|err| bad(n, format!("cannot read line: {err}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|err| bad(n, format!("invalid JSON: {err}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad(n, "not a JSON object".into()))?;
        let step = match obj.get("step") {
            None => return Err(bad(n, "no `step` field".into())),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(n, format!("`step` is not a number: {v}")))?,
        };
        let mut values = BTreeMap::new();
        for &k in keys {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) => {
                    let x = v
                        .as_f64()
                        .ok_or_else(|| bad(n, format!("`{k}` is not a number: {v}")))?;
                    values.insert(k.to_string(), x);
                }
            }
        }
        rows.push(MetricsRow {
            line: n,
            step,
            values,
        });
    }
    Ok(rows)
}

/// Training curves: one panel per key (stacked), one line (with point markers) per run, x =
/// step. `runs` are (name, path to `metrics.jsonl`). Keys missing on some lines leave gaps in
/// the points (the line joins the steps that have the key); a key no run records gets an empty
/// panel titled "no data". See [`read_metrics`] for the accepted file format and errors.
pub fn plot_training_curves<S: AsRef<str>, P: AsRef<Path>>(
    runs: &[(S, P)],
    keys: &[&str],
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    if runs.is_empty() || keys.is_empty() {
        return Err(EvalError::NothingToPlot {
            path: path.to_path_buf(),
            detail: "need at least one run and one key".into(),
        });
    }
    let data: Vec<(String, PathBuf, Vec<MetricsRow>)> = runs
        .iter()
        .map(|(name, p)| {
            Ok((
                name.as_ref().to_string(),
                p.as_ref().to_path_buf(),
                read_metrics(p, keys)?,
            ))
        })
        .collect::<Result<_>>()?;

    let mut svg = String::new();
    {
        let e = plot_err(path);
        let height = PANEL_HEIGHT * keys.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let panels = root.split_evenly((keys.len(), 1));
        for (panel, &key) in panels.iter().zip(keys) {
            let series: Vec<Vec<(f64, f64)>> = data
                .iter()
                .map(|(_, _, rows)| {
                    let mut pts: Vec<(f64, f64)> = rows
                        .iter()
                        .filter_map(|r| r.values.get(key).map(|&v| (r.step, v)))
                        .collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    pts
                })
                .collect();
            let has_data = series.iter().any(|s| !s.is_empty());
            let (x0, x1) = padded_range(series.iter().flatten().map(|p| p.0), &[]);
            let (y0, y1) = padded_range(series.iter().flatten().map(|p| p.1), &[]);
            let caption = if has_data {
                key.to_string()
            } else {
                format!("{key} (no data)")
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, (FONT, 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(&e)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc(key)
                .draw()
                .map_err(&e)?;
            for (i, ((name, _, _), pts)) in data.iter().zip(&series).enumerate() {
                if pts.is_empty() {
                    continue;
                }
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(&e)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 2, c.filled())))
                    .map_err(&e)?;
            }
            if has_data {
                draw_legend(&mut chart, path)?;
            }
        }
        root.present().map_err(&e)?;
    }
    write_atomic(path, svg.as_bytes())
}
