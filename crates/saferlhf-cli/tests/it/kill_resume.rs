//! Crash safety of real runs: `saferlhf sft` and `saferlhf rlhf` are killed with SIGKILL at
//! several points (twice in the middle of a checkpoint write, held there by the
//! `SAFERLHF_STALL_WRITE` test hook, and once mid-step), resumed with `--resume` until they
//! finish, and must end with exactly the tensors of an unbroken run. Tensors are compared by name and bytes (the safetensors header's
//! metadata order is not stable).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `command --config config`, with the run directory `dir`, a checkpoint every 2 steps and
/// `extra` overrides.
fn run_args(command: &str, config: &str, dir: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [command, "--config", config]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sets = [
        format!("run.dir={dir}"),
        "train.checkpoint_every=2".into(),
        "train.keep_last=3".into(),
        "run.progress=false".into(),
    ];
    for set in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
        args.push("--set".into());
        args.push(set.to_string());
    }
    args
}

/// The SFT run: 12 steps.
fn sft_args(dir: &str) -> Vec<String> {
    run_args("sft", "configs/tiny-sft.toml", dir, &[])
}

/// The RL run (RePO on random tiny models): 6 steps.
fn rl_args(dir: &str) -> Vec<String> {
    run_args(
        "rlhf",
        "configs/tiny-rlhf.toml",
        dir,
        &["objective=\"repo\"", "train.steps=6"],
    )
}

fn spawn(args: &[String], resume: bool, stall: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saferlhf"));
    cmd.current_dir(root())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        cmd.arg("--resume");
    }
    match stall {
        Some(pattern) => cmd.env(saferlhf::core::fs::STALL_WRITE_ENV, pattern),
        None => cmd.env_remove(saferlhf::core::fs::STALL_WRITE_ENV),
    };
    cmd.spawn().unwrap()
}

/// Waits until `ready` holds (or the child exits, or a minute passes), then SIGKILLs the child.
/// Returns whether it was killed while still running.
fn kill_when(child: &mut Child, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the run neither reached the kill point nor exited");
}

fn complete_checkpoint(run: &Path, step: u64) -> bool {
    run.join(format!("checkpoints/step-{step:08}/state.json"))
        .is_file()
}

/// A checkpoint of `step` stalled in its temporary directory by the stall hook.
fn stalled_checkpoint(run: &Path, step: u64) -> bool {
    let prefix = format!(".tmp-step-{step:08}-");
    std::fs::read_dir(run.join("checkpoints"))
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&prefix)
                    && e.path().join(saferlhf::core::fs::STALL_MARKER).exists()
            })
        })
        .unwrap_or(false)
}

/// Runs `args` unbroken in `whole`, then in `broken`: (1) killed inside the checkpoint write
/// of step `stalls[0]` (every file written but the final rename; the step-2 checkpoint before
/// it complete), (2) resumed and killed inside the write of step `stalls[1]`, (3) resumed and
/// killed mid-step once the `stalls[1]` checkpoint is complete (best effort: a fast run may
/// finish first), (4) resumed to the end. The final weights must match the unbroken run's.
fn check_kill_and_resume(
    tmp: &TempDir,
    args: fn(&str) -> Vec<String>,
    weights: &str,
    stalls: [u64; 2],
) {
    let whole = tmp.path("whole");
    let out = Command::new(env!("CARGO_BIN_EXE_saferlhf"))
        .current_dir(root())
        .args(args(&whole))
        .output()
        .unwrap();
    ok(&out);

    let broken = tmp.path("broken");
    let run = Path::new(&broken).to_path_buf();
    let a = args(&broken);
    let stall_at = |step: u64| {
        run.join(format!("checkpoints/step-{step:08}"))
            .display()
            .to_string()
    };

    // 1. Inside the first stalled checkpoint write.
    let mut child = spawn(&a, false, Some(&stall_at(stalls[0])));
    assert!(kill_when(&mut child, || stalled_checkpoint(
        &run, stalls[0]
    )));
    assert!(
        !complete_checkpoint(&run, stalls[0]),
        "the stalled write is not complete"
    );
    assert!(
        complete_checkpoint(&run, 2),
        "the previous checkpoint is intact"
    );

    // 2. Resumed, then killed inside the second stalled write.
    let mut child = spawn(&a, true, Some(&stall_at(stalls[1])));
    assert!(kill_when(&mut child, || stalled_checkpoint(
        &run, stalls[1]
    )));
    assert!(complete_checkpoint(&run, stalls[0]));
    assert!(!complete_checkpoint(&run, stalls[1]));

    // 3. Resumed, then killed mid-step after the next checkpoint (if it is still running).
    let mut child = spawn(&a, true, None);
    kill_when(&mut child, || complete_checkpoint(&run, stalls[1]));

    // 4. Resumed to the end.
    let out = Command::new(env!("CARGO_BIN_EXE_saferlhf"))
        .current_dir(root())
        .args(&a)
        .arg("--resume")
        .env_remove(saferlhf::core::fs::STALL_WRITE_ENV)
        .output()
        .unwrap();
    ok(&out);

    let final_of = |dir: &str| Path::new(dir).join("final").join(weights);
    let expected = safetensors_tensors(&final_of(&whole));
    let got = safetensors_tensors(&final_of(&broken));
    assert!(!expected.is_empty());
    assert_eq!(
        expected.iter().map(|t| &t.0).collect::<Vec<_>>(),
        got.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((name, e), (_, g)) in expected.iter().zip(&got) {
        assert!(
            e == g,
            "{name}: the killed-and-resumed run differs from the unbroken one"
        );
    }
}

#[test]
fn a_killed_sft_run_resumes_to_the_unbroken_weights() {
    let tmp = TempDir::new("kill-sft");
    check_kill_and_resume(&tmp, sft_args, "model.safetensors", [4, 8]);
}

#[test]
fn a_killed_rl_run_resumes_to_the_unbroken_weights() {
    let tmp = TempDir::new("kill-rl");
    check_kill_and_resume(&tmp, rl_args, "model.safetensors", [4, 6]);
}
