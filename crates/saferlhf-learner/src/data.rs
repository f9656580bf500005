//! Loading a config's `[[data.sources]]` into tokenized train and held-out sets.
//!
//! What each format gives, per task:
//!
//! | format | reward | cost | sft |
//! |---|---|---|---|
//! | `pku` | helpfulness pairs | safety pairs, both responses labelled | — |
//! | `hh` | chosen/rejected, no labels | chosen = safer, no labels | prompt + chosen |
//! | `pyrit` | less harmful chosen | less harmful chosen, labelled by `safe_threshold` | — |
//! | `sft` | — | — | prompt + response |
//!
//! DPO reads pairs as the reward model does, except that `dpo.preference = "safety"` picks the
//! PKU-SafeRLHF safety pair (as the cost model does); HH-RLHF and PyRIT pairs keep their one
//! ordering.
//!
//! Sources are concatenated in order (each cut to its `limit`), then split into train and
//! held-out sets with [`split_holdout_grouped`] keyed by the prompt text and the run's seed, so a
//! prompt never lands on both sides. Every example is tokenized once, up front; pairs whose two
//! responses encode to the same tokens (after truncation) teach nothing and are dropped, and
//! counted. A fingerprint of the tokenized training set goes into checkpoints, so a resume on
//! different data is refused.

use std::path::Path;

use saferlhf_data::{
    HhSplit, LoadOptions, LoadReport, PairOptions, PreferencePair, ScoreAggregate, SftExample,
    dedup_scored, harm_pairs, load_hh, load_pku, load_pyrit_harm, load_pyrit_harm_dir, load_sft,
    split_holdout_grouped,
};

use crate::collate::{Encoded, EncodedPair, Encoder, EndToken};
use crate::config::{DataSource, HhPrompt, SourceFormat, TaskKind, TrainConfig};
use crate::error::{Result, TrainError};
use crate::objectives::dpo::Preference;

/// A tokenized dataset split into train and held-out parts.
#[derive(Debug, Clone)]
pub struct Dataset<T> {
    /// Training examples, in source order (the trainer shuffles per epoch).
    pub train: Vec<T>,
    /// Held-out examples (already thinned to `data.eval_limit`).
    pub eval: Vec<T>,
    /// What was read, kept and dropped.
    pub summary: DataSummary,
}

/// What loading the data did, for logs and the run's metrics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DataSummary {
    /// One line per file read (rows read, kept, skipped).
    pub reports: Vec<String>,
    /// Examples per source, after its limit.
    pub per_source: Vec<usize>,
    /// Training examples.
    pub train: usize,
    /// Held-out examples (after `eval_limit`).
    pub eval: usize,
    /// Held-out examples before `eval_limit`.
    pub eval_total: usize,
    /// Examples whose prompt or response was truncated to `model.max_length`.
    pub truncated: usize,
    /// Pairs dropped because both responses encode to the same tokens.
    pub dropped_identical: usize,
    /// Hash of the tokenized training set (token ids and labels, in order).
    pub fingerprint: u64,
}

fn options(s: &DataSource) -> LoadOptions {
    LoadOptions {
        skip_invalid: s.skip_invalid,
    }
}

fn hh_split(s: &DataSource) -> HhSplit {
    match s.hh_prompt() {
        HhPrompt::LastAssistant => HhSplit::LastAssistant,
        HhPrompt::CommonPrefix => HhSplit::CommonPrefix,
    }
}

fn note(reports: &mut Vec<String>, report: &LoadReport) {
    log::info!("{report}");
    reports.push(report.to_string());
}

/// The text pairs of one source; `view` picks which PKU-SafeRLHF preference orders a pair.
fn source_pairs(
    view: Preference,
    s: &DataSource,
    reports: &mut Vec<String>,
) -> Result<Vec<PreferencePair>> {
    let pairs = match s.format {
        SourceFormat::Pku => {
            let (rows, report) = load_pku(&s.path, &options(s))?;
            note(reports, &report);
            rows.iter()
                .map(|r| match view {
                    Preference::Safety => r.safety_pair(),
                    Preference::Helpfulness | Preference::SafetyAware => r.helpfulness_pair(),
                })
                .collect()
        }
        SourceFormat::Hh => {
            let (pairs, report) = load_hh(&s.path, hh_split(s), &options(s))?;
            note(reports, &report);
            pairs
        }
        SourceFormat::Pyrit => {
            let (items, file_reports) = if Path::new(&s.path).is_dir() {
                load_pyrit_harm_dir(&s.path, ScoreAggregate::Mean, &options(s))?
            } else {
                let (items, report) = load_pyrit_harm(&s.path, ScoreAggregate::Mean, &options(s))?;
                (items, vec![report])
            };
            for r in &file_reports {
                note(reports, r);
            }
            let (items, merged) = dedup_scored(items);
            if merged > 0 {
                log::info!(
                    "{}: {merged} duplicate (prompt, response) rows merged",
                    s.path.display()
                );
            }
            let defaults = PairOptions::default();
            let opts = PairOptions {
                safe_threshold: s.safe_threshold(),
                min_margin: s.min_margin.unwrap_or(defaults.min_margin),
                max_pairs_per_prompt: s.max_pairs_per_prompt,
            };
            harm_pairs(&items, &opts)?
        }
        SourceFormat::Sft => unreachable_format(s)?,
    };
    Ok(source_window(s, pairs))
}

/// The examples of a source that the config keeps: `offset` skipped, then at most `limit`.
fn source_window<T>(s: &DataSource, mut items: Vec<T>) -> Vec<T> {
    if let Some(offset) = s.offset {
        items.drain(..offset.min(items.len()));
    }
    if let Some(limit) = s.limit {
        items.truncate(limit);
    }
    items
}

fn unreachable_format<T>(s: &DataSource) -> Result<T> {
    Err(TrainError::config(
        "data.sources",
        format!(
            "{}: this format cannot be used for this task",
            s.path.display()
        ),
    ))
}

/// SafeDPO's transform T on one source's pairs, with its counts in the load reports.
fn safety_aware(
    pairs: Vec<PreferencePair>,
    s: &DataSource,
    reports: &mut Vec<String>,
) -> Result<Vec<PreferencePair>> {
    use crate::objectives::safe_dpo::{Transformed, transform};
    let mut kept = Vec::with_capacity(pairs.len());
    let mut counts = [0usize; 4];
    for (i, p) in pairs.iter().enumerate() {
        let (pair, what) = transform(p).ok_or_else(|| {
            TrainError::config(
                "dpo.preference",
                format!(
                    "{}: pair {i} has no safe/unsafe label on both responses; \
                     `safety_aware` (SafeDPO) needs them (PKU-SafeRLHF rows have them)",
                    s.path.display()
                ),
            )
        })?;
        counts[what as usize] += 1;
        kept.extend(pair);
    }
    let line = format!(
        "{}: SafeDPO transform: {} kept safe/safe, {} kept safe/unsafe, {} swapped, {} dropped \
         (both unsafe)",
        s.path.display(),
        counts[Transformed::KeptSafeSafe as usize],
        counts[Transformed::KeptSafeUnsafe as usize],
        counts[Transformed::Swapped as usize],
        counts[Transformed::Dropped as usize]
    );
    note_line(reports, line);
    Ok(kept)
}

fn note_line(reports: &mut Vec<String>, line: String) {
    log::info!("{line}");
    reports.push(line);
}

/// Which preference orders the PKU-SafeRLHF pairs of a config: safety for a cost model and for
/// DPO with `dpo.preference = "safety"`, helpfulness otherwise.
pub fn pair_view(config: &TrainConfig) -> Preference {
    match config.task() {
        TaskKind::Cost => Preference::Safety,
        TaskKind::Dpo => config
            .dpo
            .as_ref()
            .map(|d| d.preference)
            .unwrap_or_default(),
        _ => Preference::Helpfulness,
    }
}

/// Loads, splits and tokenizes the preference pairs of a reward, cost or DPO config.
pub fn load_pairs(config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<EncodedPair>> {
    let view = pair_view(config);
    let mut summary = DataSummary::default();
    let mut all = Vec::new();
    for s in &config.data.sources {
        let mut pairs = source_pairs(view, s, &mut summary.reports)?;
        if view == Preference::SafetyAware {
            pairs = safety_aware(pairs, s, &mut summary.reports)?;
        }
        summary.per_source.push(pairs.len());
        all.extend(pairs);
    }
    let encode = |p: PreferencePair, summary: &mut DataSummary| -> Result<Option<EncodedPair>> {
        let e = encoder.encode_pair(
            &p.prompt,
            &p.chosen,
            &p.rejected,
            p.chosen_safe,
            p.rejected_safe,
        )?;
        if e.chosen.tokens == e.rejected.tokens {
            summary.dropped_identical += 1;
            return Ok(None);
        }
        summary.truncated += usize::from(e.chosen.truncated) + usize::from(e.rejected.truncated);
        Ok(Some(e))
    };
    let fingerprint = |h: &mut Fingerprint, p: &EncodedPair| {
        h.tokens(&p.chosen.tokens);
        h.tokens(&p.rejected.tokens);
        h.label(p.chosen_safe);
        h.label(p.rejected_safe);
    };
    finish_dataset(
        config,
        all,
        summary,
        |p| p.prompt.as_str(),
        encode,
        fingerprint,
    )
}

/// Splits `all` by prompt (`prompt_of`), encodes both halves (`encode` may drop an example),
/// caps the held-out half at `data.eval_limit`, fingerprints the training half and checks the
/// sizes: the common end of every loader.
fn finish_dataset<T, E>(
    config: &TrainConfig,
    all: Vec<T>,
    mut summary: DataSummary,
    prompt_of: impl Fn(&T) -> &str,
    encode: impl Fn(T, &mut DataSummary) -> Result<Option<E>>,
    fingerprint: impl Fn(&mut Fingerprint, &E),
) -> Result<Dataset<E>> {
    let (train, eval) =
        split_holdout_grouped(all, config.data.eval_fraction, config.run.seed, prompt_of)?;
    let encode_all = |xs: Vec<T>, summary: &mut DataSummary| -> Result<Vec<E>> {
        let mut out = Vec::with_capacity(xs.len());
        for x in xs {
            if let Some(e) = encode(x, summary)? {
                out.push(e);
            }
        }
        Ok(out)
    };
    let train = encode_all(train, &mut summary)?;
    let mut eval = encode_all(eval, &mut summary)?;
    summary.eval_total = eval.len();
    if let Some(limit) = config.data.eval_limit {
        eval = spread(eval, limit);
    }
    let mut h = Fingerprint::new();
    for e in &train {
        fingerprint(&mut h, e);
    }
    summary.train = train.len();
    summary.eval = eval.len();
    summary.fingerprint = h.finish();
    check_sizes(&summary)?;
    Ok(Dataset {
        train,
        eval,
        summary,
    })
}

/// Loads, splits and tokenizes the examples of an SFT config.
pub fn load_sft_examples(config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Encoded>> {
    let mut summary = DataSummary::default();
    let mut all: Vec<SftExample> = Vec::new();
    for s in &config.data.sources {
        let examples = match s.format {
            SourceFormat::Sft => {
                let (rows, report) = load_sft(&s.path, &options(s))?;
                note(&mut summary.reports, &report);
                rows
            }
            SourceFormat::Hh => {
                let (pairs, report) = load_hh(&s.path, hh_split(s), &options(s))?;
                note(&mut summary.reports, &report);
                pairs
                    .into_iter()
                    .map(|p| SftExample {
                        prompt: p.prompt,
                        response: p.chosen,
                    })
                    .collect()
            }
            _ => unreachable_format(s)?,
        };
        let examples = source_window(s, examples);
        summary.per_source.push(examples.len());
        all.extend(examples);
    }
    let encode = |x: SftExample, summary: &mut DataSummary| -> Result<Option<Encoded>> {
        let e = encoder.encode(&x.prompt, &x.response, EndToken::UnlessTruncated)?;
        summary.truncated += usize::from(e.truncated);
        Ok(Some(e))
    };
    let fingerprint = |h: &mut Fingerprint, e: &Encoded| {
        h.tokens(&e.tokens);
        h.value(e.prompt_len as u64);
    };
    finish_dataset(
        config,
        all,
        summary,
        |e| e.prompt.as_str(),
        encode,
        fingerprint,
    )
}

/// At most `limit` items of `items`, evenly spread (item `floor(i * n / limit)` for each i), in
/// order.
pub fn spread<T>(items: Vec<T>, limit: usize) -> Vec<T> {
    let n = items.len();
    if n <= limit {
        return items;
    }
    let mut keep = vec![false; n];
    for i in 0..limit {
        keep[i * n / limit] = true;
    }
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

fn check_sizes(summary: &DataSummary) -> Result<()> {
    if summary.train == 0 {
        return Err(TrainError::config(
            "data.sources",
            format!(
                "no training examples left after the hold-out split ({} held out, {} dropped)",
                summary.eval_total, summary.dropped_identical
            ),
        ));
    }
    if summary.eval == 0 {
        return Err(TrainError::config(
            "data.eval_fraction",
            format!(
                "the held-out split is empty ({} training examples); raise data.eval_fraction \
                 or add data",
                summary.train
            ),
        ));
    }
    Ok(())
}

/// An order-sensitive 64-bit hash of token ids and labels.
struct Fingerprint(u64);

impl Fingerprint {
    fn new() -> Self {
        Fingerprint(0x243f_6a88_85a3_08d3)
    }

    fn value(&mut self, v: u64) {
        self.0 = saferlhf_core::rng::splitmix64(self.0 ^ v);
    }

    fn tokens(&mut self, ids: &[u32]) {
        self.value(ids.len() as u64);
        for &t in ids {
            self.value(u64::from(t));
        }
    }

    fn label(&mut self, l: Option<bool>) {
        self.value(match l {
            None => 2,
            Some(true) => 1,
            Some(false) => 0,
        });
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_an_even_subset_in_order() {
        assert_eq!(spread((0..10).collect::<Vec<_>>(), 4), vec![0, 2, 5, 7]);
        assert_eq!(spread((0..3).collect::<Vec<_>>(), 4), vec![0, 1, 2]);
        assert_eq!(spread((0..5).collect::<Vec<_>>(), 5), vec![0, 1, 2, 3, 4]);
    }
}
