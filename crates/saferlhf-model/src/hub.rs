//! Finding a model given as a Hugging Face repository id (`Qwen/Qwen2.5-0.5B-Instruct`) in the
//! local Hugging Face cache, never on the network.
//!
//! The cache is the one `huggingface_hub` writes: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`. A repository `owner/name` lives in `models--owner--name`, its
//! files in `snapshots/<commit>/` and the commit of each branch in `refs/<branch>`. An id may end
//! in `@revision` (a branch, a tag or a commit hash); without one, `main`.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// The Hugging Face cache directory this process would use.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = var("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cache/huggingface/hub"))
}

/// Whether `spec` reads as a repository id (`owner/name`, optionally `@revision`) rather than a
/// path: two non-empty parts of letters, digits and `-_.`, not starting with `.`.
pub fn is_repo_id(spec: &str) -> bool {
    let id = spec.split_once('@').map_or(spec, |(id, _)| id);
    let mut parts = id.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    ok(owner) && ok(name)
}

/// `spec` itself when it names an existing file or directory; otherwise, when it reads as a
/// repository id, its snapshot directory in the Hugging Face cache `cache`. An error says where
/// it looked and how to get the model (saferlhf never downloads).
pub fn resolve_in(spec: &Path, cache: Option<&Path>) -> Result<PathBuf> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    let text = spec.to_string_lossy();
    let not_found = |detail: String| {
        ModelError::io(
            spec,
            std::io::Error::new(std::io::ErrorKind::NotFound, detail),
        )
    };
    if !is_repo_id(&text) {
        return Err(not_found("no such file or directory".into()));
    }
    let (id, revision) = text.split_once('@').unwrap_or((&text, "main"));
    let fetch_hint = format!(
        "saferlhf does not download models: fetch it on a machine with network (`hf download \
         {id}`) into this cache, or pass the model's directory"
    );
    let Some(cache) = cache else {
        return Err(not_found(format!(
            "neither a path nor in a Hugging Face cache (HOME, HF_HOME and HF_HUB_CACHE are \
             unset); {fetch_hint}"
        )));
    };
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    if !repo.is_dir() {
        return Err(not_found(format!(
            "neither a path nor in the Hugging Face cache ({} is missing); {fetch_hint}",
            repo.display()
        )));
    }
    // A branch or tag name maps to a commit through refs/; a commit hash is a snapshot name.
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(hash) => hash.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    let snapshot = repo.join("snapshots").join(&commit);
    if snapshot.is_dir() {
        return Ok(snapshot);
    }
    Err(not_found(format!(
        "revision `{revision}` of {id} is not in the Hugging Face cache ({} is missing); \
         {fetch_hint}",
        snapshot.display()
    )))
}

/// [`resolve_in`] the process's Hugging Face cache ([`cache_dir`]).
pub fn resolve(spec: &Path) -> Result<PathBuf> {
    resolve_in(spec, cache_dir().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_told_from_paths() {
        for id in [
            "Qwen/Qwen2.5-0.5B-Instruct",
            "meta-llama/Llama-3.2-1B@main",
            "a/b@0123abc",
        ] {
            assert!(is_repo_id(id), "{id}");
        }
        for path in [
            "model.gguf",
            "./a/b",
            "/abs/dir",
            "a/b/c",
            "../x",
            "a/",
            "a b/c",
        ] {
            assert!(!is_repo_id(path), "{path}");
        }
    }

    #[test]
    fn snapshots_are_found_by_branch_and_commit_and_misses_are_explained() {
        let cache = std::env::temp_dir().join(format!("saferlhf-hub-{}", std::process::id()));
        let repo = cache.join("models--Qwen--Qwen2.5-0.5B-Instruct");
        let snapshot = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let find = |spec: &str| resolve_in(Path::new(spec), Some(&cache));
        assert_eq!(find("Qwen/Qwen2.5-0.5B-Instruct").unwrap(), snapshot);
        assert_eq!(find("Qwen/Qwen2.5-0.5B-Instruct@abc123").unwrap(), snapshot);
        // An existing path is taken as it is.
        assert_eq!(find(snapshot.to_str().unwrap()).unwrap(), snapshot);
        let err = find("Qwen/Qwen2.5-0.5B-Instruct@v2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`v2`") && err.contains("does not download"),
            "{err}"
        );
        let err = find("Qwen/Qwen3-8B").unwrap_err().to_string();
        assert!(
            err.contains("models--Qwen--Qwen3-8B") && err.contains("hf download Qwen/Qwen3-8B"),
            "{err}"
        );
        let err = find("no/such/path.gguf").unwrap_err().to_string();
        assert!(err.contains("no such file"), "{err}");
        let err = resolve_in(Path::new("Qwen/Qwen3-8B"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("HF_HOME"), "{err}");
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
