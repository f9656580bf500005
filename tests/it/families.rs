//! Every model family through the whole pipeline: the tiny transformers fixtures of Qwen2, Qwen3
//! and Llama 3 (`scripts/make-family-fixtures.py`: weights, character tokenizer, ChatML
//! `chat_template`) as the initial policy of an SFT step and the backbone of a reward and a cost
//! model step, then one RePO step from the SFT result; the final model is a Hugging Face
//! directory of the same family with the family's own tensor names, which loads back and keeps
//! the model's chat template.

use std::path::{Path, PathBuf};

use saferlhf::Device;
use saferlhf::burn::tensor::{Bool, Int, Tensor, TensorData};
use saferlhf::learner::checkpoint::FINAL_DIR;
use saferlhf::learner::rl::{RlConfig, train_rl};
use saferlhf::learner::{TrainConfig, TrainOptions, train};
use saferlhf::model::config::Family;
use saferlhf::model::weights::load_hf_dir;
use saferlhf_testkit::{TempDir, root};

fn supervised(config: &str, init: &Path, dir: &Path) -> PathBuf {
    let mut config = TrainConfig::load(&root().join("configs").join(config), &[], None).unwrap();
    config.model.preset = None;
    config.model.init = Some(init.to_path_buf());
    config.model.template = "model".into();
    config.model.max_length = 60;
    config.run.dir = dir.to_path_buf();
    config.train.max_steps = Some(1);
    config.train.eval_every = 0;
    config.train.checkpoint_every = 0;
    for source in &mut config.data.sources {
        source.path = root().join(&source.path);
    }
    let summary = train(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    assert!(summary.run.finished);
    dir.join(FINAL_DIR)
}

#[test]
fn each_family_trains_sft_reward_cost_and_rl_and_exports_as_itself() {
    for (name, family, own_tensor) in [
        (
            "tiny-qwen2",
            Family::Qwen2,
            "model.layers.0.self_attn.k_proj.bias",
        ),
        (
            "tiny-qwen3",
            Family::Qwen3,
            "model.layers.1.self_attn.k_norm.weight",
        ),
        ("tiny-llama3", Family::Llama, "model.norm.weight"),
    ] {
        let fixture = root().join("tests/fixtures").join(name);
        let tmp = TempDir::new(&format!("family-{name}"));
        let sft = supervised("tiny-sft.toml", &fixture, &tmp.0.join("sft"));
        let reward = supervised("tiny-reward.toml", &fixture, &tmp.0.join("reward"));
        let cost = supervised("tiny-cost.toml", &fixture, &tmp.0.join("cost"));

        let mut rl = RlConfig::load(&root().join("configs/tiny-rlhf.toml"), &[]).unwrap();
        rl.policy.preset = None;
        rl.policy.init = Some(sft.clone());
        rl.policy.template = "model".into();
        rl.reward_model.preset = None;
        rl.reward_model.path = Some(reward);
        rl.cost_model.preset = None;
        rl.cost_model.path = Some(cost);
        rl.run.dir = tmp.0.join("rl");
        rl.train.steps = 1;
        rl.train.checkpoint_every = 0;
        for source in &mut rl.data.sources {
            source.path = root().join(&source.path);
        }
        let summary = train_rl(&rl, &Device::flex(), &TrainOptions::default()).unwrap();
        assert!(summary.run.finished, "{name}");

        let out = tmp.0.join("rl").join(FINAL_DIR);
        let (config, model) = load_hf_dir(&out, &Device::flex()).unwrap();
        assert_eq!(config.family().unwrap(), family, "{name}");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(written["model_type"], family.model_type(), "{name}");
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(tensors.tensor(own_tensor).is_ok(), "{name}: {own_tensor}");
        let template = saferlhf::model::tokenizer::Tokenizer::from_file(out.join("tokenizer.json"))
            .unwrap()
            .chat_template()
            .map(str::to_string);
        assert!(
            template.is_some_and(|t| t.contains("<|im_start|>")),
            "{name}"
        );
        if std::env::var_os("SAFERLHF_KEEP_FAMILY_EXPORTS").is_some() {
            let keep = std::env::temp_dir().join(format!("saferlhf-family-export-{name}"));
            let _ = std::fs::remove_dir_all(&keep);
            std::fs::create_dir_all(&keep).unwrap();
            for entry in std::fs::read_dir(&out).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, keep.join(path.file_name().unwrap())).unwrap();
            }
            // saferlhf's logits of the exported model on the fixture's inputs, for
            // scripts/check-family-exports.py to compare with transformers'.
            let expected: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(fixture.join("expected.json")).unwrap(),
            )
            .unwrap();
            let rows = |key: &str| -> Vec<Vec<i64>> {
                serde_json::from_value(expected[key].clone()).unwrap()
            };
            let (ids, mask) = (rows("input_ids"), rows("attention_mask"));
            let (b, s) = (ids.len(), ids[0].len());
            let device = Device::flex();
            let tokens =
                Tensor::<2, Int>::from_data(TensorData::new(ids.concat(), [b, s]), &device);
            let mask = Tensor::<2, Bool>::from_data(
                TensorData::new(mask.concat().iter().map(|&m| m != 0).collect(), [b, s]),
                &device,
            );
            let logits = model.forward(tokens, mask);
            let dims = logits.dims();
            let values = logits.try_into_vec_as::<f32>().unwrap();
            let dump = serde_json::json!({"shape": dims, "logits": values});
            std::fs::write(keep.join("saferlhf-logits.json"), dump.to_string()).unwrap();
        }
    }
}
