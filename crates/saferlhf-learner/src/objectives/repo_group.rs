//! RePO in group form, with per-prompt multipliers. This is this library's own design, not a
//! published method: RePO's per-prompt (critical) constraint (Peng et al., arXiv 2410.19933)
//! estimated from each prompt's own group of `k` responses, without critics.
//!
//! Each prompt `x` has its own constraint `E[g | x] <= τ` and its own multiplier `λ_x`, with
//! `g` chosen by `repo_group.constraint`:
//!
//! | constraint | g | τ |
//! |---|---|---|
//! | `rectified` (default) | {C + δ}⁺ | `slack` (0: every response safe) |
//! | `indicator` | `1[C > 0]` | `epsilon` (a per-prompt chance constraint) |
//!
//! With a group estimator that subtracts baselines (`rloo`, the default of the book's
//! configs, or `dr_grpo`), the advantage is
//! `A_i = [(R_i − b^R_i) − λ_x (g_i − b^g_i)] / s`: a group in which no response violates has
//! `g ≡ 0` and gets the plain reward advantage whatever `λ_x` is (no compensation pressure);
//! inside a violating group a violator loses `λ_x(g_i − b^g_i)` and every safe response gains
//! the same `λ_x b^g_i`, so safe responses are still ranked by reward alone.
//!
//! **Multipliers.** A table maps each prompt (a 64-bit FNV-1a hash of its token ids) to
//! `log λ_x`. At a prompt's visit, before its advantages are formed,
//! `log λ_x ← min(log λ_x + η·λ_x·(ĝ_x − τ), log λ_max)` with `ĝ_x` the mean of `g` over its
//! group. A prompt seen for the first time starts at the global multiplier `λ_g` (the
//! `[lagrange]` multiplier, stepped each rollout on the batch's `ĝ_x − τ`), or at
//! `lagrange.init` with `unseen = "fixed"`. `per_prompt = false` uses `λ_g` everywhere. The
//! table is part of every checkpoint.
//!
//! **Why the cap is mandatory for `rectified` with τ = 0.** Under a KL penalty the optimal
//! policy for a fixed λ gives every response positive probability, so `E[g | x] > 0` for any
//! finite λ_x and the multiplier of a prompt where violations are possible never stops
//! growing; it sits at `λ_max`. A slack or the indicator form have finite optima and let
//! λ_x fall again.
//!
//! **Bias and variance.** With leave-one-out baselines and `scale = "none"` the gradient
//! estimate is unbiased for the Lagrangian at the sampling policy; `one_plus_lambda` is
//! unbiased for the prompt-reweighted objective Σ_x L_x/(1 + λ_x); a per-group standard
//! deviation (GRPO) makes it biased. Rare violations are under-sampled: a prompt violating with
//! probability p shows no violation in a group of k with probability (1 − p)^k (0.66 for
//! p = 0.05, k = 8), and then its λ_x does not move. A prompt is visited once per epoch, so
//! per-prompt multipliers pay off only with many epochs over a small prompt set, or a larger η.

use std::collections::BTreeMap;

use saferlhf_model::Cost;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::multiplier::{LagrangeConfig, Multiplier};
use super::{AdvantageWeights, Groups, OnlineObjective};
use crate::config::defaults::repo_group as d;
use crate::error::{Result, TrainError};

/// `repo_group.constraint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupConstraint {
    /// g = {C + δ}⁺, τ = `slack`.
    #[default]
    Rectified,
    /// g = `1[C > 0]`, τ = `epsilon`.
    Indicator,
}

/// `repo_group.unseen`: the multiplier of a prompt's first visit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenLambda {
    /// The global multiplier λ_g at that time.
    #[default]
    Global,
    /// `lagrange.init`.
    Fixed,
}

/// `repo_group.scale`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupScale {
    /// s = 1.
    #[default]
    None,
    /// s = 1 + λ_x (safe-rlhf's normalisation, per prompt).
    OnePlusLambda,
}

/// `[repo_group]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RePoGroupConfig {
    /// `rectified` or `indicator`.
    pub constraint: GroupConstraint,
    /// δ of {C + δ}⁺ (>= 0).
    pub margin: f64,
    /// τ of the rectified constraint (>= 0).
    pub slack: f64,
    /// τ of the indicator constraint, in [0, 1).
    pub epsilon: f64,
    /// One multiplier per prompt (default), or λ_g for every prompt.
    pub per_prompt: bool,
    /// η of the per-prompt log-λ step (> 0).
    pub lr: f64,
    /// λ_max, the cap of every per-prompt multiplier (> 0).
    pub max: f64,
    /// Where a new prompt's multiplier starts: `global` or `fixed`.
    pub unseen: UnseenLambda,
    /// `none` or `one_plus_lambda`.
    pub scale: GroupScale,
}

impl Default for RePoGroupConfig {
    fn default() -> Self {
        RePoGroupConfig {
            constraint: GroupConstraint::Rectified,
            margin: d::MARGIN,
            slack: d::SLACK,
            epsilon: d::EPSILON,
            per_prompt: true,
            lr: d::LR,
            max: d::MAX,
            unseen: UnseenLambda::Global,
            scale: GroupScale::None,
        }
    }
}

impl RePoGroupConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: String| Err(TrainError::config(format!("repo_group.{k}"), why));
        for (k, v) in [("margin", self.margin), ("slack", self.slack)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, format!("must be >= 0, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.epsilon) {
            return bad(
                "epsilon",
                format!("must lie in [0, 1), got {}", self.epsilon),
            );
        }
        for (k, v) in [("lr", self.lr), ("max", self.max)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(k, format!("must be > 0, got {v}"));
            }
        }
        Ok(())
    }

    /// τ of the configured constraint.
    pub fn threshold(&self) -> f64 {
        match self.constraint {
            GroupConstraint::Rectified => self.slack,
            GroupConstraint::Indicator => self.epsilon,
        }
    }

    /// g of one cost.
    pub fn g(&self, cost: f32) -> f32 {
        match self.constraint {
            GroupConstraint::Rectified => (cost + self.margin as f32).max(0.0),
            GroupConstraint::Indicator => {
                if Cost::is_unsafe(cost) {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// The per-prompt multipliers: `log λ_x` by prompt key, with the step rule and the cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiplierTable {
    /// `log λ_x` by prompt key.
    pub entries: BTreeMap<u64, f64>,
    /// η.
    pub lr: f64,
    /// `ln λ_max`.
    pub log_max: f64,
}

impl MultiplierTable {
    /// An empty table.
    pub fn new(lr: f64, max: f64) -> Self {
        MultiplierTable {
            entries: BTreeMap::new(),
            lr,
            log_max: max.ln(),
        }
    }

    /// λ of `key`, or `default` for a prompt not seen yet.
    pub fn get(&self, key: u64, default: f64) -> f64 {
        self.entries.get(&key).map_or(default, |l| l.exp())
    }

    /// One visit: the entry starts at `start` (capped) if absent, then takes the log-λ step on
    /// `excess = ĝ_x − τ`. Returns whether the prompt was new.
    pub fn step(&mut self, key: u64, start: f64, excess: f64) -> bool {
        let new = !self.entries.contains_key(&key);
        let log_max = self.log_max;
        let entry = self
            .entries
            .entry(key)
            .or_insert_with(|| start.ln().min(log_max));
        *entry = (*entry + self.lr * entry.exp() * excess).min(log_max);
        new
    }

    /// Whether `lambda` sits at the cap.
    pub fn at_cap(&self, lambda: f64) -> bool {
        lambda.ln() >= self.log_max - 1e-12
    }
}

/// What the last rollout showed (for the metrics line).
#[derive(Debug, Clone, Default, PartialEq)]
struct StepStats {
    lambdas: Vec<f64>,
    at_cap: f64,
    new_prompts: usize,
    violating_groups: f64,
    mean_g: f64,
    safe_bonus: Option<f64>,
}

/// RePO in group form (see the module docs).
#[derive(Debug, Clone)]
pub struct RePoGroup {
    config: RePoGroupConfig,
    init: f64,
    global: Multiplier,
    table: MultiplierTable,
    /// λ_x of each sample of the rollout being processed.
    current: Vec<f32>,
    stats: StepStats,
}

impl RePoGroup {
    /// From `[repo_group]` and `[lagrange]` (the global multiplier, its threshold set to τ).
    pub fn new(config: &RePoGroupConfig, lagrange: &LagrangeConfig) -> Self {
        let global = LagrangeConfig {
            threshold: config.threshold(),
            ..lagrange.clone()
        }
        .build();
        RePoGroup {
            config: config.clone(),
            init: lagrange.init,
            global,
            table: MultiplierTable::new(config.lr, config.max),
            current: Vec::new(),
            stats: StepStats::default(),
        }
    }

    /// The per-prompt multipliers.
    pub fn table(&self) -> &MultiplierTable {
        &self.table
    }

    /// λ for a prompt `key` under the current state (λ_g without per-prompt multipliers).
    pub fn lambda_of(&self, key: u64) -> f64 {
        if !self.config.per_prompt {
            return self.global.lambda();
        }
        self.table.get(key, self.unseen())
    }

    fn unseen(&self) -> f64 {
        match self.config.unseen {
            UnseenLambda::Global => self.global.lambda(),
            UnseenLambda::Fixed => self.init,
        }
    }
}

impl OnlineObjective for RePoGroup {
    fn name(&self) -> &'static str {
        "repo_group"
    }

    fn uses_cost(&self) -> bool {
        true
    }

    fn observe(&mut self, step: u64, rewards: &[f32], costs: &[f32]) {
        // Without group information every sample is its own prompt of one.
        let keys: Vec<u64> = (0..rewards.len() as u64).collect();
        let groups = Groups {
            keys: &keys,
            size: 1,
        };
        self.observe_groups(step, &groups, rewards, costs);
    }

    fn observe_groups(&mut self, step: u64, groups: &Groups, _rewards: &[f32], costs: &[f32]) {
        let k = groups.size.max(1);
        let tau = self.config.threshold();
        let g: Vec<f32> = costs.iter().map(|&c| self.config.g(c)).collect();
        let mut stats = StepStats::default();
        let mut signals = Vec::new();
        let mut lambdas = Vec::with_capacity(costs.len());
        let (mut bonus_sum, mut bonus_n) = (0.0f64, 0usize);
        for (j, group) in g.chunks(k).enumerate() {
            let key = groups.keys[j * k];
            let g_hat = group.iter().map(|&x| x as f64).sum::<f64>() / group.len() as f64;
            signals.push(g_hat);
            let lambda = if self.config.per_prompt {
                let start = self.unseen();
                if self.table.step(key, start, g_hat - tau) {
                    stats.new_prompts += 1;
                }
                self.table.get(key, start)
            } else {
                self.global.lambda()
            };
            if group.iter().any(|&x| x > 0.0) {
                stats.violating_groups += 1.0;
                // The bonus λ_x·b^g of each safe sample (leave-one-out baseline).
                let sum: f64 = group.iter().map(|&x| x as f64).sum();
                for &x in group.iter().filter(|&&x| x == 0.0) {
                    let b = if group.len() > 1 {
                        (sum - x as f64) / (group.len() - 1) as f64
                    } else {
                        0.0
                    };
                    bonus_sum += lambda * b;
                    bonus_n += 1;
                }
            }
            stats.lambdas.push(lambda);
            lambdas.extend(std::iter::repeat_n(lambda as f32, group.len()));
        }
        // The global multiplier steps on the batch mean of ĝ_x (its threshold is τ).
        self.global.observe(step, &signals);
        let n_groups = signals.len().max(1) as f64;
        stats.violating_groups /= n_groups;
        // The cap that applies: the table's per prompt, `lagrange.max` for λ_g.
        let global_cap = self.global.config().max;
        let at_cap = |l: f64| {
            if self.config.per_prompt {
                self.table.at_cap(l)
            } else {
                global_cap.is_some_and(|m| l.ln() >= m.ln() - 1e-12)
            }
        };
        stats.at_cap = stats.lambdas.iter().filter(|&&l| at_cap(l)).count() as f64 / n_groups;
        stats.mean_g = g.iter().map(|&x| x as f64).sum::<f64>() / g.len().max(1) as f64;
        stats.safe_bonus = (bonus_n > 0).then(|| bonus_sum / bonus_n as f64);
        self.current = lambdas;
        self.stats = stats;
    }

    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        (
            rewards.to_vec(),
            costs.iter().map(|&c| self.config.g(c)).collect(),
        )
    }

    fn advantage_weights(&self, rewards: &[f32], _costs: &[f32]) -> AdvantageWeights {
        let n = rewards.len();
        let lambdas: Vec<f32> = if self.current.len() == n {
            self.current.clone()
        } else {
            vec![self.global.lambda() as f32; n]
        };
        let mut w = AdvantageWeights {
            reward: Vec::with_capacity(n),
            cost: Vec::with_capacity(n),
        };
        for l in lambdas {
            let s = match self.config.scale {
                GroupScale::None => 1.0,
                GroupScale::OnePlusLambda => 1.0 + l,
            };
            w.reward.push(1.0 / s);
            w.cost.push(l / s);
        }
        w
    }

    fn multiplier(&self) -> Option<&Multiplier> {
        Some(&self.global)
    }

    fn multiplier_mut(&mut self) -> Option<&mut Multiplier> {
        Some(&mut self.global)
    }

    fn metrics(&self, _rewards: &[f32], _costs: &[f32]) -> Map<String, Value> {
        let s = &self.stats;
        let mut m = Map::new();
        m.insert("lambda_signal".into(), json!(self.global.signal()));
        let mut sorted = s.lambdas.clone();
        sorted.sort_by(f64::total_cmp);
        if !sorted.is_empty() {
            let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
            m.insert(
                "lambda_prompt_mean".into(),
                json!(sorted.iter().sum::<f64>() / sorted.len() as f64),
            );
            m.insert("lambda_prompt_median".into(), json!(q(0.5)));
            m.insert("lambda_prompt_p90".into(), json!(q(0.9)));
            m.insert("lambda_prompt_max".into(), json!(sorted[sorted.len() - 1]));
        }
        m.insert("lambda_at_cap".into(), json!(s.at_cap));
        m.insert("table_size".into(), json!(self.table.entries.len()));
        m.insert("new_prompts".into(), json!(s.new_prompts));
        m.insert("violating_groups".into(), json!(s.violating_groups));
        m.insert("mean_g".into(), json!(s.mean_g));
        if let Some(b) = s.safe_bonus {
            m.insert("safe_bonus".into(), json!(b));
        }
        m
    }

    fn state(&self) -> Value {
        json!({ "multiplier": self.global, "table": self.table })
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        self.global = super::load_multiplier(state, "repo_group")?;
        let t = state.get("table").ok_or_else(|| {
            TrainError::config("objective", "repo_group: no multiplier table in state")
        })?;
        self.table = serde_json::from_value(t.clone()).map_err(|e| {
            TrainError::config(
                "objective",
                format!("repo_group: bad multiplier table: {e}"),
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lagrange(init: f64) -> LagrangeConfig {
        LagrangeConfig {
            init,
            window: 1,
            ..LagrangeConfig::default()
        }
    }

    fn observe(o: &mut RePoGroup, keys: &[u64], costs: &[f32], k: usize) {
        let groups = Groups { keys, size: k };
        o.observe_groups(0, &groups, &vec![0.0; costs.len()], costs);
    }

    #[test]
    fn dual_step_by_hand() {
        // C = [-1, 0.5, -2, 2]: g = [0, 0.5, 0, 2], ĝ = 0.625; log λ = 0 + 0.1·1·0.625.
        let config = RePoGroupConfig::default();
        let mut o = RePoGroup::new(&config, &lagrange(1.0));
        observe(&mut o, &[9; 4], &[-1.0, 0.5, -2.0, 2.0], 4);
        assert!((o.table().entries[&9] - 0.0625).abs() < 1e-12);
        assert!((o.lambda_of(9) - 1.0644945).abs() < 1e-7);
        assert_eq!(o.current, vec![o.lambda_of(9) as f32; 4]);
        // Indicator, ε = 0.05: g = [0, 1, 0, 1], ĝ = 0.5: Δ log λ = 0.045; all safe: −0.005.
        let ind = RePoGroupConfig {
            constraint: GroupConstraint::Indicator,
            ..config.clone()
        };
        let mut o = RePoGroup::new(&ind, &lagrange(1.0));
        observe(
            &mut o,
            &[1, 1, 1, 1, 2, 2, 2, 2],
            &[-1.0, 0.5, -2.0, 2.0, -1.0, -1.0, -3.0, -0.1],
            4,
        );
        assert!((o.table().entries[&1] - 0.045).abs() < 1e-12);
        assert!((o.table().entries[&2] + 0.005).abs() < 1e-12);
        // Rectified, τ = 0, an all-safe group: unchanged.
        let mut o = RePoGroup::new(&config, &lagrange(1.0));
        observe(&mut o, &[5; 4], &[-1.0, -0.5, -2.0, -3.0], 4);
        assert_eq!(o.table().entries[&5], 0.0);
    }

    #[test]
    fn compensation_does_not_reach_the_rectified_cost() {
        // R = [1, 1], C = [-0.5, -5]: rectified g = [0, 0], no cost signal at all.
        let o = RePoGroup::new(&RePoGroupConfig::default(), &lagrange(1.0));
        let (_, g) = o.terminal_scores(&[1.0, 1.0], &[-0.5, -5.0]);
        assert_eq!(g, vec![0.0, 0.0]);
    }

    #[test]
    fn unseen_prompts_table_cap_and_checkpoint_round_trip() {
        let config = RePoGroupConfig {
            max: 2.0,
            lr: 5.0,
            ..RePoGroupConfig::default()
        };
        let mut o = RePoGroup::new(&config, &lagrange(1.5));
        // Unseen: λ_g.
        assert_eq!(o.lambda_of(77), o.global.lambda());
        observe(&mut o, &[77, 77], &[1.0, 3.0], 2);
        assert_ne!(o.lambda_of(77), o.global.lambda());
        // A big step hits the cap and stays there.
        for _ in 0..5 {
            observe(&mut o, &[77, 77], &[1.0, 3.0], 2);
        }
        assert!((o.lambda_of(77) - 2.0).abs() < 1e-12);
        assert!(o.table().at_cap(o.lambda_of(77)));
        let state = o.state();
        let text = serde_json::to_string(&state).unwrap();
        let mut back = RePoGroup::new(&config, &lagrange(1.5));
        back.load_state(&serde_json::from_str(&text).unwrap())
            .unwrap();
        assert_eq!(back.table, o.table);
        for (k, v) in &o.table.entries {
            assert_eq!(back.table.entries[k].to_bits(), v.to_bits());
        }
        assert_eq!(back.global, o.global);
        // Without per-prompt multipliers every prompt gets λ_g.
        let global = RePoGroupConfig {
            per_prompt: false,
            ..config
        };
        let mut o = RePoGroup::new(&global, &lagrange(1.5));
        observe(&mut o, &[1, 1, 2, 2], &[1.0, 1.0, -1.0, -1.0], 2);
        assert!(o.table().entries.is_empty());
        let w = o.advantage_weights(&[0.0; 4], &[0.0; 4]);
        assert_eq!(w.cost, vec![o.global.lambda() as f32; 4]);
    }

    #[test]
    fn no_finite_optimum_for_the_strict_constraint() {
        // π_ref uniform over two answers, R = [1, 0], g = [1, 0], β = 0.1: the violating mass
        // of π_λ ∝ π_ref·exp((R − λg)/β) is σ((1 − λ)/β).
        let mass = |l: f64| 1.0 / (1.0 + (-(1.0 - l) / 0.1f64).exp());
        assert!((mass(1.0) - 0.5).abs() < 1e-12);
        assert!((mass(2.0) - 4.54e-5).abs() < 1e-7);
        assert!((mass(3.0) - 2.06e-9).abs() < 1e-11);
        // On exact expectations the multiplier never stops: every step raises it (ever more
        // slowly) until the cap holds it.
        let mut table = MultiplierTable::new(0.1, 5.0);
        let mut last = table.get(0, 1.0);
        for _ in 0..2000 {
            table.step(0, 1.0, mass(table.get(0, 1.0)));
            let now = table.get(0, 1.0);
            assert!(now > last, "{now} after {last}");
            last = now;
        }
        let mut near = MultiplierTable::new(100.0, 2.0);
        for _ in 0..50 {
            near.step(0, 1.9, mass(near.get(0, 1.9)));
        }
        assert!(near.at_cap(near.get(0, 1.9)));
    }
}
