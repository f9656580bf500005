//! The online constrained-RLHF learner (PPO, PPO-Lagrangian, RePO, reward shaping): see
//! [`learner`] for the loop, [`gae`] for the token streams and advantages, [`loss`] for the PPO
//! losses, [`critic`] for the value functions and [`config`] for `configs/{ppo,ppo-lag,repo}.toml`.
//! What differs between the methods lives in [`crate::objectives`].

pub mod config;
pub mod critic;
pub mod gae;
pub mod learner;
pub mod loss;

pub use config::{CriticMode, RlConfig};
pub use learner::{RlSummary, train_rl, train_rl_with};
