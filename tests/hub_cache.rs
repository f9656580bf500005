//! A model named by its Hugging Face repository id is found in the local Hugging Face cache:
//! a cache laid out as `huggingface_hub` writes it (`models--owner--name/snapshots/<commit>`,
//! `refs/main`) holding the tiny Qwen2 fixture, found through `HF_HUB_CACHE`. Its own test binary,
//! since it sets an environment variable.

use saferlhf::Device;
use saferlhf::model::config::Family;
use saferlhf::model::load_pretrained;
use saferlhf_testkit::{TempDir, root};

#[test]
fn a_repository_id_loads_from_the_local_cache_and_a_missing_one_says_where_it_looked() {
    let cache = TempDir::new("hf-cache");
    let repo = cache.0.join("models--saferlhf--tiny-qwen2");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for entry in std::fs::read_dir(root().join("tests/fixtures/tiny-qwen2")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }
    // SAFETY: this test binary has no other test, so no thread reads the environment meanwhile.
    unsafe { std::env::set_var("HF_HUB_CACHE", &cache.0) };

    let p = load_pretrained("saferlhf/tiny-qwen2", &Device::flex()).unwrap();
    assert_eq!(p.config.family().unwrap(), Family::Qwen2);
    assert!(p.tokenizer.chat_template().is_some());

    let err = load_pretrained("saferlhf/tiny-qwen9", &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("models--saferlhf--tiny-qwen9") && err.contains("does not download"),
        "{err}"
    );
}
