//! The `--device cpu|cuda` choice. CUDA needs a binary built with the stage's `cuda` feature;
//! without it the choice fails with a message that says how to get one.

use anyhow::{bail, Context, Result};
use candle_core::Device;

/// Where the network trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU (default); outputs are byte-identical for a seed whatever the thread count.
    Cpu,
    /// The first NVIDIA GPU; needs a build with `--features cuda`. GPU kernels do not promise
    /// the same bits from run to run.
    Cuda,
}

/// Opens the chosen device.
pub fn select_device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                bail!(
                    "--device cuda: this binary was built without CUDA support; rebuild with \
                     `cargo build --release --features cuda` (needs the CUDA toolkit) or use \
                     --device cpu"
                );
            }
            Device::new_cuda(0).context("--device cuda: opening GPU 0")
        }
    }
}

/// Process-wide CPU settings for training many small batches; call it in `main` after
/// parsing the arguments and before any other thread starts (it sets environment variables).
/// `threads` is the `--threads` value (0 = one per core).
///
/// - candle sizes the split of a matrix product from `RAYON_NUM_THREADS`, and without it
///   counts physical cores by parsing /proc/cpuinfo on every product (measured: 4% of a
///   two-tower step). It is set to the thread count unless already set.
/// - candle runs element-wise ops on 64K+ elements on its own thread pool whose threads
///   spin while they wait; with the rayon pool beside it, a shared or small machine spends
///   most of its time spinning (measured: 60% of a two-tower step on 2 busy cores).
///   `CANDLE_NUM_THREADS=1` keeps those ops on the calling thread; matrix products still
///   use the rayon pool. An explicit `CANDLE_NUM_THREADS` is respected.
/// - glibc returns freed memory at the heap top to the kernel and maps large blocks
///   afresh, so every step page-faults its tensors in again (a third of a step); larger
///   trim and map thresholds keep that memory for the next step.
pub fn configure_process(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    // SAFETY: mallopt only changes allocator parameters; glibc documents it as safe to call
    // at any time, and both values are within the documented ranges.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 16 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        assert!(select_device(DeviceKind::Cpu).unwrap().is_cpu());
    }

    #[test]
    fn cuda_without_the_feature_fails_with_a_remedy() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let message = format!("{:#}", select_device(DeviceKind::Cuda).unwrap_err());
        assert!(message.contains("built without CUDA support"), "{message}");
        assert!(message.contains("--features cuda"), "{message}");
    }
}
