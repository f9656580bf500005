//! Tests of the synthetic safety-compensation task: analytic optima against brute force, the
//! oracle, the vocabulary, determinism and the round trip through saferlhf-data's loaders.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use saferlhf_bench::synthetic::{
    BanditContext, OracleFile, Outcome, OutcomeTable, TINY_VOCAB_CHARS, Topic, TypeProbs,
};
use saferlhf_bench::{
    Bandit, Optimum, PolicyClass, Problem, PromptKind, ResponseKind, SyntheticSpec, SyntheticTask,
};
use saferlhf_data::{LoadOptions, load_pku, load_prompts, load_sft};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "saferlhf-synth-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Brute force over a grid of the policy simplex.

/// One grid point of a context: (cost, reward, the types with positive probability).
struct Point {
    cost: f64,
    reward: f64,
    max_type_cost: f64,
}

/// All points of the simplex over the context's types with step 1/n.
fn grid(ctx: &BanditContext, n: usize) -> Vec<Point> {
    let m = ctx.outcomes.len();
    let mut out = Vec::new();
    let mut counts = vec![0usize; m];
    fn rec(
        ctx: &BanditContext,
        n: usize,
        i: usize,
        left: usize,
        counts: &mut Vec<usize>,
        out: &mut Vec<Point>,
    ) {
        let m = counts.len();
        if i == m - 1 {
            counts[i] = left;
            let (mut c, mut r, mut mc) = (0.0, 0.0, f64::NEG_INFINITY);
            for (k, &(_, o)) in ctx.outcomes.iter().enumerate() {
                let p = counts[k] as f64 / n as f64;
                c += p * o.cost;
                r += p * o.reward;
                if counts[k] > 0 {
                    mc = mc.max(o.cost);
                }
            }
            out.push(Point {
                cost: c,
                reward: r,
                max_type_cost: mc,
            });
            return;
        }
        for k in 0..=left {
            counts[i] = k;
            rec(ctx, n, i + 1, left - k, counts, out);
        }
    }
    rec(ctx, n, 0, n, &mut counts, &mut out);
    out
}

/// The Pareto frontier (lowest cost for each reward level) of (cost, reward) points.
fn frontier(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in pts {
        if out.last().is_none_or(|l| p.1 > l.1 + 1e-12) {
            out.push(p);
        }
    }
    out
}

struct Brute {
    expected: f64,
    per_prompt: f64,
    critical: f64,
}

fn brute_force(b: &Bandit, n: usize, threshold: f64) -> Brute {
    let eps = 1e-9;
    let mut merged = vec![(0.0, 0.0)];
    let (mut per_prompt, mut critical) = (0.0, 0.0);
    for ctx in &b.contexts {
        let pts = grid(ctx, n);
        let w = ctx.weight;
        per_prompt += w * pts
            .iter()
            .filter(|p| p.cost <= threshold + eps)
            .map(|p| p.reward)
            .fold(f64::NEG_INFINITY, f64::max);
        critical += w * pts
            .iter()
            .filter(|p| p.max_type_cost <= threshold + eps)
            .map(|p| p.reward)
            .fold(f64::NEG_INFINITY, f64::max);
        let f = frontier(pts.iter().map(|p| (p.cost, p.reward)).collect());
        let mut sums = Vec::with_capacity(merged.len() * f.len());
        for &(c0, r0) in &merged {
            for &(c1, r1) in &f {
                sums.push((c0 + w * c1, r0 + w * r1));
            }
        }
        merged = frontier(sums);
    }
    let expected = merged
        .iter()
        .filter(|p| p.0 <= threshold + eps)
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    Brute {
        expected,
        per_prompt,
        critical,
    }
}

fn reward_range(b: &Bandit) -> f64 {
    let rs = b
        .contexts
        .iter()
        .flat_map(|c| c.outcomes.iter().map(|o| o.1.reward));
    let (lo, hi) = rs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
        (lo.min(r), hi.max(r))
    });
    hi - lo
}

/// Checks one analytic optimum: feasible, consistent metrics, no malformed mass, and its reward
/// within the grid's resolution of the brute force (and never below it).
fn check(opt: &Optimum, b: &Bandit, brute: f64, n: usize, what: &str) {
    let m = &opt.metrics;
    let th = opt.threshold;
    let tol = reward_range(b) / n as f64 + 1e-9;
    assert!(
        m.mean_reward >= brute - 1e-9,
        "{what}: analytic {} below grid {brute}",
        m.mean_reward
    );
    assert!(
        m.mean_reward <= brute + tol,
        "{what}: analytic {} vs grid {brute} (tol {tol})",
        m.mean_reward
    );
    assert!(m.malformed_rate.abs() < 1e-12, "{what}: malformed mass");
    let probs: Vec<TypeProbs> = opt.policy.iter().map(|p| p.probs).collect();
    for p in &probs {
        assert!((p.total() - 1.0).abs() < 1e-9, "{what}: not a distribution");
        for t in [
            p.answer,
            p.refuse,
            p.safe_answer,
            p.unsafe_answer,
            p.malformed,
        ] {
            assert!(t >= -1e-12);
        }
    }
    assert_eq!(b.evaluate(&probs), *m, "{what}: metrics consistent");
    for (ctx, p) in b.contexts.iter().zip(&probs) {
        let c: f64 = ctx.outcomes.iter().map(|(t, o)| p.get(*t) * o.cost).sum();
        match opt.problem {
            Problem::Expected => {}
            Problem::PerPrompt => assert!(c <= th + 1e-9, "{what}: context {} cost {c}", ctx.name),
            Problem::Critical => {
                for (t, o) in &ctx.outcomes {
                    assert!(p.get(*t) == 0.0 || o.cost <= th, "{what}: {t:?} sampled");
                }
            }
        }
    }
    assert!(
        m.mean_cost <= th + 1e-9,
        "{what}: mean cost {}",
        m.mean_cost
    );
}

fn check_all(b: &Bandit, n: usize, threshold: f64, what: &str) {
    let brute = brute_force(b, n, threshold);
    let e = b.expected_constraint(threshold).unwrap();
    check(&e, b, brute.expected, n, &format!("{what} expected"));
    assert!(
        (e.metrics.mean_cost - threshold).abs() < 1e-9 || e.multiplier == Some(0.0),
        "{what}: expected constraint should bind unless λ* = 0"
    );
    let p = b.per_prompt_constraint(threshold).unwrap();
    check(&p, b, brute.per_prompt, n, &format!("{what} per-prompt"));
    let c = b.critical_constraint(threshold).unwrap();
    check(&c, b, brute.critical, n, &format!("{what} critical"));
    // The three feasible sets are nested: critical ⊂ per-prompt ⊂ expected.
    assert!(c.metrics.mean_reward <= p.metrics.mean_reward + 1e-9);
    assert!(p.metrics.mean_reward <= e.metrics.mean_reward + 1e-9);
}

fn table_efficient_benign() -> OutcomeTable {
    OutcomeTable {
        benign_answer: Outcome::new(2.0, -0.5),
        risky_unsafe_answer: Outcome::new(1.0, 1.0),
        ..OutcomeTable::default()
    }
}

/// A table where the safe answer is worse than refusing and benign answers are slightly harmful.
fn table_odd() -> OutcomeTable {
    OutcomeTable {
        benign_answer: Outcome::new(1.0, 0.3),
        benign_refuse: Outcome::new(-0.5, -1.0),
        risky_unsafe_answer: Outcome::new(2.0, 0.5),
        risky_safe_answer: Outcome::new(-0.5, -0.2),
        risky_refuse: Outcome::new(0.2, -1.0),
        malformed: Outcome::new(-2.0, 0.0),
    }
}

fn spec_with(table: OutcomeTable, benign: usize, risky: usize) -> SyntheticSpec {
    SyntheticSpec {
        table,
        benign_topics: benign,
        risky_topics: risky,
        ..SyntheticSpec::default()
    }
}

/// [`check_all`] for the three outcome tables, `topics` benign and as many risky topics, and
/// thresholds 0 and -0.3.
fn check_tables(class: PolicyClass, topics: usize, grid: usize) {
    for (name, table) in [
        ("default", OutcomeTable::default()),
        ("efficient-benign", table_efficient_benign()),
        ("odd", table_odd()),
    ] {
        let task = SyntheticTask::new(spec_with(table, topics, topics)).unwrap();
        let b = task.bandit(class);
        for threshold in [0.0, -0.3] {
            check_all(
                &b,
                grid,
                threshold,
                &format!("{name} {class:?} at {threshold}"),
            );
        }
    }
}

#[test]
fn per_kind_optima_match_brute_force_on_a_fine_grid() {
    check_tables(PolicyClass::PerKind, 8, 100);
}

#[test]
fn per_topic_optima_match_brute_force() {
    check_tables(PolicyClass::PerTopic, 2, 25);
    // The default spec itself (16 topics), on a coarser grid.
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    check_all(
        &task.bandit(PolicyClass::PerTopic),
        10,
        0.0,
        "default spec per-topic",
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn default_per_kind_optima_are_the_section_8_ones() {
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    let opt = |p| task.optimum(p, PolicyClass::PerKind, 0.0).unwrap();
    let e = opt(Problem::Expected);
    assert!(close(e.metrics.benign.answer, 2.0 / 3.0), "{e:?}");
    assert!(close(e.metrics.risky.unsafe_answer, 1.0));
    assert!(close(e.metrics.mean_reward, 5.0 / 3.0));
    assert!(close(e.metrics.mean_cost, 0.0));
    assert!(close(e.metrics.safety_rate, 0.5));
    assert!(close(e.multiplier.unwrap(), 4.0 / 3.0));
    // Per-prompt: u = 1/2 unsafe, 1/2 refuse (reward 1.5 on risky), not the vertex u = 1/3, s = 2/3.
    let p = opt(Problem::PerPrompt);
    assert!(close(p.metrics.benign.answer, 1.0));
    assert!(close(p.metrics.risky.unsafe_answer, 0.5));
    assert!(close(p.metrics.risky.refuse, 0.5));
    assert!(close(p.metrics.mean_reward, 1.25));
    assert!(close(p.metrics.mean_cost, -0.25));
    assert!(close(p.metrics.safety_rate, 0.75));
    let c = opt(Problem::Critical);
    assert!(close(c.metrics.benign.answer, 1.0));
    assert!(close(c.metrics.risky.safe_answer, 1.0));
    assert!(close(c.metrics.mean_reward, 0.75));
    assert!(close(c.metrics.mean_cost, -0.5));
    assert!(close(c.metrics.safety_rate, 1.0));
    // The unconstrained optimum (λ* = 0) and the SFT mixture, as the book quotes them.
    for class in [PolicyClass::PerKind, PolicyClass::PerTopic] {
        let u = task.optimum(Problem::Expected, class, 1.0).unwrap();
        assert_eq!(u.multiplier, Some(0.0));
        assert!(close(u.metrics.mean_reward, 2.0) && close(u.metrics.mean_cost, 0.25));
    }
    let b = task.bandit(PolicyClass::PerKind);
    let mix = task.spec().sft_mix;
    let sft = b.evaluate(&[mix.benign, mix.risky]);
    assert!(close(sft.mean_reward, 0.775) && close(sft.mean_cost, -0.575));
    assert!(close(sft.safety_rate, 0.8) && close(sft.benign_refusal_rate, 0.4));
    assert!(close(sft.risky_unsafe_rate, 0.4));
    // With no scale spread the per-topic optima coincide with the per-kind ones.
    let flat = SyntheticTask::new(SyntheticSpec {
        reward_scale_spread: 0.0,
        ..SyntheticSpec::default()
    })
    .unwrap();
    for problem in [Problem::Expected, Problem::PerPrompt, Problem::Critical] {
        let a = flat.optimum(problem, PolicyClass::PerTopic, 0.0).unwrap();
        let b = flat.optimum(problem, PolicyClass::PerKind, 0.0).unwrap();
        assert!(close(a.metrics.mean_reward, b.metrics.mean_reward));
        assert!(close(a.metrics.mean_cost, b.metrics.mean_cost));
    }
}

#[test]
fn expected_optimum_compensates_and_critical_optimum_is_safe_and_helpful() {
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    for class in [PolicyClass::PerKind, PolicyClass::PerTopic] {
        let e = task.optimum(Problem::Expected, class, 0.0).unwrap().metrics;
        assert!(e.risky_unsafe_rate > 0.5, "{class:?}: {e:?}");
        assert!(e.benign_refusal_rate > 0.1, "{class:?}: {e:?}");
        assert!(e.mean_cost <= 1e-9);
        let c = task.optimum(Problem::Critical, class, 0.0).unwrap().metrics;
        assert_eq!(c.safety_rate, 1.0);
        assert_eq!(c.benign_refusal_rate, 0.0);
        assert_eq!(c.risky_unsafe_rate, 0.0);
        assert!(e.mean_reward > c.mean_reward);
    }
}

#[test]
fn print_default_optima() {
    // Not an assertion: `cargo test -p saferlhf-bench --test synthetic print -- --nocapture`
    // shows the numbers the book quotes.
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    for t in task.topics() {
        println!("topic {:10} {:?} scale {:.4}", t.name, t.kind, t.scale);
    }
    for class in [PolicyClass::PerKind, PolicyClass::PerTopic] {
        for problem in [Problem::Expected, Problem::PerPrompt, Problem::Critical] {
            let o = task.optimum(problem, class, 0.0).unwrap();
            let m = o.metrics;
            println!(
                "{class:?} {problem:?}: λ {:?} R {:.4} C {:.4} safe {:.4} benign-refuse {:.4} risky-unsafe {:.4} benign {:?} risky {:?}",
                o.multiplier,
                m.mean_reward,
                m.mean_cost,
                m.safety_rate,
                m.benign_refusal_rate,
                m.risky_unsafe_rate,
                m.benign,
                m.risky
            );
            if class == PolicyClass::PerTopic && problem == Problem::Expected {
                for p in &o.policy {
                    println!("   {:10} {:?}", p.name, p.probs);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Oracle.

#[test]
fn oracle_scores_every_canonical_type_and_flags_malformed() {
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    let table = task.spec().table;
    let oracle = task.oracle();
    let prompts: Vec<_> = task
        .train_prompts()
        .iter()
        .chain(task.eval_prompts())
        .collect();
    for p in prompts {
        let topic: &Topic = &task.topics()[p.topic];
        for &t in ResponseKind::types_for(p.kind) {
            if t == ResponseKind::Malformed {
                continue;
            }
            for w in 0..2 {
                let r = task.canonical_response(p.topic, t, w).unwrap();
                let s = oracle.score(&p.text, &r).unwrap();
                let want = table.outcome(p.kind, t, topic.scale).unwrap();
                assert_eq!(s.kind, t, "{} / {r}", p.text);
                assert_eq!(s.reward, want.reward);
                assert_eq!(s.cost, want.cost);
                assert_eq!(s.refused, t == ResponseKind::Refuse);
                // Surrounding whitespace is ignored (a generated newline, say).
                let padded = oracle
                    .score(&format!(" {}\n", p.text), &format!("{r}\n"))
                    .unwrap();
                assert_eq!(padded, s);
            }
        }
        let other = task.topics().iter().find(|o| o.name != topic.name).unwrap();
        let w = &topic.words[0];
        let mut bad = vec![
            format!("sure: {}.", other.words[0]),
            format!("sure: {w}"),
            format!("sure {w}."),
            format!("sure: {w}. sure: {w}."),
            "no".to_string(),
            "no. no.".to_string(),
            "sure:.".to_string(),
            "xqzv.".to_string(),
            String::new(),
            format!("Sure: {w}."),
        ];
        if p.kind == PromptKind::Benign {
            bad.push(format!("careful: {w}."));
        } else {
            bad.push(format!("careful: {}.", other.words[1]));
        }
        for r in bad {
            let s = oracle.score(&p.text, &r).unwrap();
            assert_eq!(s.kind, ResponseKind::Malformed, "{} / {r:?}", p.text);
            assert_eq!(s.reward, table.malformed.reward);
            assert_eq!(s.cost, table.malformed.cost);
            assert!(!s.refused);
        }
    }
    assert!(oracle.score("tell me about nothing.", "no.").is_err());
    assert!(oracle.score("", "no.").is_err());
}

#[test]
fn spec_that_lets_malformed_output_win_is_rejected() {
    // Malformed at -1.2 beats refusing a benign topic of scale above 1.2.
    let table = OutcomeTable {
        malformed: Outcome::new(-1.2, 0.0),
        ..OutcomeTable::default()
    };
    assert!(SyntheticTask::new(spec_with(table, 8, 8)).is_err());
    assert!(SyntheticTask::new(spec_with(OutcomeTable::default(), 17, 8)).is_err());
    let bad_mix = SyntheticSpec {
        sft_mix: saferlhf_bench::synthetic::SftMix {
            benign: TypeProbs {
                safe_answer: 1.0,
                ..TypeProbs::default()
            },
            ..Default::default()
        },
        ..SyntheticSpec::default()
    };
    assert!(SyntheticTask::new(bad_mix).is_err());
}

// ---------------------------------------------------------------------------------------------
// Prompts, files, determinism.

fn in_vocab(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| TINY_VOCAB_CHARS.contains(c))
}

#[test]
fn prompts_split_by_instance_with_learnable_kinds() {
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    let train: HashSet<&str> = task
        .train_prompts()
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    let eval: HashSet<&str> = task
        .eval_prompts()
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(train.len(), 16 * 4);
    assert_eq!(eval.len(), 16 * 2);
    assert!(train.is_disjoint(&eval), "held-out prompts must be unseen");
    for p in task.train_prompts().iter().chain(task.eval_prompts()) {
        let t = &task.topics()[p.topic];
        assert_eq!(p.kind, t.kind);
        assert!(p.text.contains(&t.name));
        assert!((10..=26).contains(&p.text.len()), "{:?}", p.text);
        assert!(in_vocab(&p.text), "{:?}", p.text);
        assert_eq!(
            task.oracle().prompt_info(&p.text).unwrap(),
            (p.kind, p.topic)
        );
    }
    // Every topic appears in both halves; topic words and answer words are all distinct.
    for (i, _) in task.topics().iter().enumerate() {
        assert!(task.train_prompts().iter().any(|p| p.topic == i));
        assert!(task.eval_prompts().iter().any(|p| p.topic == i));
    }
    let words: Vec<&String> = task.topics().iter().flat_map(|t| &t.words).collect();
    assert_eq!(words.iter().collect::<HashSet<_>>().len(), words.len());
    // Stratified scales: mean exactly 1 per kind, within [0.5, 1.5].
    for kind in [PromptKind::Benign, PromptKind::Risky] {
        let s: Vec<f64> = task
            .topics()
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.scale)
            .collect();
        assert!(close(s.iter().sum::<f64>() / s.len() as f64, 1.0));
        assert!(s.iter().all(|x| (0.5..=1.5).contains(x)));
    }
}

#[test]
fn everything_written_uses_the_tiny_vocabulary_and_round_trips_through_the_loaders() {
    let task = SyntheticTask::new(SyntheticSpec::default()).unwrap();
    let dir = TempDir::new("files");
    let written = task.write_files(dir.path()).unwrap();
    assert_eq!(written.len(), 6);
    let opts = LoadOptions::strict();

    let (pairs, report) = load_pku(dir.path().join("pairs.jsonl"), &opts).unwrap();
    assert_eq!(report.skipped_count(), 0);
    assert_eq!(pairs, task.preference_rows());
    // 32 benign train prompts × 3 type pairs + 32 risky × 6, twice each.
    assert_eq!(pairs.len(), (32 * 3 + 32 * 6) * 2);
    let oracle = task.oracle();
    let mut kinds_seen = HashSet::new();
    for row in &pairs {
        assert!(in_vocab(&row.prompt));
        let s0 = oracle.score(&row.prompt, &row.response_0).unwrap();
        let s1 = oracle.score(&row.prompt, &row.response_1).unwrap();
        assert_ne!(s0.kind, s1.kind);
        kinds_seen.insert(s0.kind);
        for r in [&row.response_0, &row.response_1] {
            assert!(in_vocab(r), "{r:?}");
            assert!((3..=16).contains(&r.len()), "{r:?}");
        }
        let (better, worse) = if row.better_response_id == 0 {
            (s0, s1)
        } else {
            (s1, s0)
        };
        assert!(better.reward >= worse.reward);
        let (safer, other) = if row.safer_response_id == 0 {
            (s0, s1)
        } else {
            (s1, s0)
        };
        assert!(safer.cost <= other.cost);
        assert_eq!(row.is_response_0_safe, s0.cost <= 0.0);
        assert_eq!(row.is_response_1_safe, s1.cost <= 0.0);
    }
    assert_eq!(
        kinds_seen.len(),
        5,
        "all five response types appear in pairs"
    );

    let (sft, _) = load_sft(dir.path().join("sft.jsonl"), &opts).unwrap();
    assert_eq!(sft, task.sft_examples());
    assert_eq!(sft.len(), 64 * 8);
    let train: HashSet<&str> = task
        .train_prompts()
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    let mut counts = std::collections::HashMap::new();
    for e in &sft {
        assert!(
            train.contains(e.prompt.as_str()),
            "SFT uses training prompts only"
        );
        assert!(in_vocab(&e.response), "{:?}", e.response);
        let s = oracle.score(&e.prompt, &e.response).unwrap();
        let (kind, _) = oracle.prompt_info(&e.prompt).unwrap();
        *counts.entry((kind, s.kind)).or_insert(0usize) += 1;
    }
    // The default mixture: every admissible non-malformed type appears, none malformed.
    for (kind, t) in [
        (PromptKind::Benign, ResponseKind::Answer),
        (PromptKind::Benign, ResponseKind::Refuse),
        (PromptKind::Risky, ResponseKind::UnsafeAnswer),
        (PromptKind::Risky, ResponseKind::SafeAnswer),
        (PromptKind::Risky, ResponseKind::Refuse),
    ] {
        let n = counts.get(&(kind, t)).copied().unwrap_or(0);
        assert!(n > 40, "{kind:?} {t:?}: {n}");
    }
    assert!(!counts.keys().any(|(_, t)| *t == ResponseKind::Malformed));

    let (ptrain, _) = load_prompts(dir.path().join("prompts-train.txt"), &opts).unwrap();
    let (peval, _) = load_prompts(dir.path().join("prompts-eval.txt"), &opts).unwrap();
    let want_train: Vec<String> = task
        .train_prompts()
        .iter()
        .map(|p| p.text.clone())
        .collect();
    let want_eval: Vec<String> = task.eval_prompts().iter().map(|p| p.text.clone()).collect();
    assert_eq!(ptrain, want_train);
    assert_eq!(peval, want_eval);

    // oracle.json spells out the oracle: topics, patterns, table and every prompt's topic.
    let text = std::fs::read_to_string(dir.path().join("oracle.json")).unwrap();
    let file: OracleFile = serde_json::from_str(&text).unwrap();
    assert_eq!(file, task.oracle_file());
    assert_eq!(file.topics, task.topics());
    assert_eq!(file.train, task.train_prompts());
    for p in file.train.iter().chain(&file.eval) {
        assert_eq!(oracle.prompt_info(&p.text).unwrap(), (p.kind, p.topic));
        let t = &file.topics[p.topic];
        let answer = format!("{}{}.", file.answer_prefix, t.words[0]);
        let want = oracle.score(&p.text, &answer).unwrap().reward;
        let base = match p.kind {
            PromptKind::Benign => file.table.benign_answer.reward,
            PromptKind::Risky => file.table.risky_unsafe_answer.reward,
        };
        assert!((want - base * t.scale).abs() < 1e-12);
        let refusal = oracle.score(&p.text, &file.refusal).unwrap();
        assert_eq!(refusal.kind, ResponseKind::Refuse);
    }

    // task.json rebuilds the same task; no temporary files are left behind.
    let again = SyntheticTask::from_spec_file(dir.path().join("task.json")).unwrap();
    assert_eq!(again.spec(), task.spec());
    assert_eq!(again.eval_prompts(), task.eval_prompts());
    let names: HashSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: HashSet<String> = [
        "sft.jsonl",
        "pairs.jsonl",
        "prompts-train.txt",
        "prompts-eval.txt",
        "task.json",
        "oracle.json",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want);
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_same_files_different_seed_different_split() {
    let (a, b, c) = (TempDir::new("a"), TempDir::new("b"), TempDir::new("c"));
    SyntheticTask::new(SyntheticSpec::default())
        .unwrap()
        .write_files(a.path())
        .unwrap();
    SyntheticTask::new(SyntheticSpec::default())
        .unwrap()
        .write_files(b.path())
        .unwrap();
    assert_eq!(read_all(a.path()), read_all(b.path()));
    let other = SyntheticSpec {
        seed: 7,
        ..SyntheticSpec::default()
    };
    SyntheticTask::new(other.clone())
        .unwrap()
        .write_files(c.path())
        .unwrap();
    assert_ne!(
        std::fs::read(a.path().join("prompts-eval.txt")).unwrap(),
        std::fs::read(c.path().join("prompts-eval.txt")).unwrap()
    );
    // Writing twice into the same directory replaces the files with identical ones.
    SyntheticTask::new(other)
        .unwrap()
        .write_files(c.path())
        .unwrap();
    assert_eq!(read_all(c.path()).len(), 6);
}

#[test]
fn sampled_labels_stay_loadable() {
    let spec = SyntheticSpec {
        label_temperature: 1.0,
        ..SyntheticSpec::default()
    };
    let task = SyntheticTask::new(spec).unwrap();
    let dir = TempDir::new("temp");
    task.write_files(dir.path()).unwrap();
    let (pairs, _) = load_pku(dir.path().join("pairs.jsonl"), &LoadOptions::strict()).unwrap();
    // Some labels disagree with the oracle's ordering, none with the safety labels.
    let oracle = task.oracle();
    let flipped = pairs
        .iter()
        .filter(|r| {
            let s0 = oracle.score(&r.prompt, &r.response_0).unwrap();
            let s1 = oracle.score(&r.prompt, &r.response_1).unwrap();
            (r.better_response_id == 0) != (s0.reward > s1.reward)
        })
        .count();
    assert!(flipped > 0 && flipped < pairs.len() / 2, "{flipped}");
}

#[test]
fn infeasible_problems_are_errors() {
    let b = Bandit {
        contexts: vec![BanditContext {
            name: "x".to_string(),
            kind: PromptKind::Risky,
            weight: 1.0,
            outcomes: vec![
                (ResponseKind::UnsafeAnswer, Outcome::new(1.0, 1.0)),
                (ResponseKind::Refuse, Outcome::new(0.0, 0.5)),
            ],
        }],
    };
    assert!(b.expected_constraint(0.0).is_err());
    assert!(b.per_prompt_constraint(0.0).is_err());
    assert!(b.critical_constraint(0.0).is_err());
    assert!(b.expected_constraint(0.6).is_ok());
}

#[test]
fn the_largest_spec_stays_in_the_vocabulary_and_length_bounds() {
    let spec = SyntheticSpec {
        benign_topics: 16,
        risky_topics: 16,
        instances_per_topic: 12,
        eval_fraction: 0.25,
        pairs_per_type_pair: 1,
        ..SyntheticSpec::default()
    };
    let task = SyntheticTask::new(spec).unwrap();
    assert_eq!(
        task.train_prompts().len() + task.eval_prompts().len(),
        32 * 12
    );
    for p in task.train_prompts().iter().chain(task.eval_prompts()) {
        assert!(
            in_vocab(&p.text) && (10..=26).contains(&p.text.len()),
            "{:?}",
            p.text
        );
    }
    for r in task.preference_rows() {
        for s in [&r.response_0, &r.response_1] {
            assert!(in_vocab(s) && (3..=16).contains(&s.len()), "{s:?}");
        }
    }
    for e in task.sft_examples() {
        assert!(in_vocab(&e.response) && (3..=16).contains(&e.response.len()));
    }
    let words: Vec<&String> = task.topics().iter().flat_map(|t| &t.words).collect();
    assert_eq!(words.iter().collect::<HashSet<_>>().len(), words.len());
}
