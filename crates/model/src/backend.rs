//! The one place where the compute backend is chosen.
//!
//! By default everything runs on burn's CPU backend [`Flex`] (multi-threaded with rayon and
//! SIMD). Built with `--features cuda`, [`dispatch`] first checks that a CUDA driver and GPU
//! are usable — a cuda binary would otherwise panic at start-up on a machine without them —
//! and falls back to the CPU with a clear message when they are not.
//!
//! Code that runs on a backend implements [`BackendTask`]; training uses `B` (an autodiff
//! backend), inference `B::InnerBackend`; both have the models' [`crate::channels_last`] ops.

use burn::backend::Autodiff;
pub use burn::backend::Flex;

use crate::channels_last::TrainBackend;

/// The CPU inference backend.
pub type Cpu = Flex;
/// The CPU training backend.
pub type CpuAutodiff = Autodiff<Flex>;

/// Work generic over the backend; [`dispatch`] picks the backend and calls [`BackendTask::run`].
pub trait BackendTask {
    type Output;
    /// `backend` names the backend chosen, for logs and metadata.
    fn run<B: TrainBackend>(self, device: B::Device, backend: &'static str) -> Self::Output;
}

/// Run `task` on the best backend available: CUDA when compiled in and usable, else the CPU.
pub fn dispatch<T: BackendTask>(task: T) -> T::Output {
    #[cfg(feature = "cuda")]
    {
        match cuda::probe() {
            Ok(device) => {
                tracing::info!("backend: CUDA");
                return task.run::<Autodiff<burn::backend::Cuda>>(device, "cuda");
            }
            Err(why) => tracing::warn!("built with CUDA but {why}: falling back to the CPU"),
        }
    }
    tracing::info!(
        "backend: CPU (flex, {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    task.run::<CpuAutodiff>(Default::default(), "cpu")
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    use burn::tensor::Tensor;

    const DRIVER: &str = "libcuda.so.1";

    fn driver_present() -> bool {
        let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        for d in [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/compat",
            "/usr/lib/wsl/lib",
        ] {
            dirs.push(d.into());
        }
        dirs.iter().any(|d| d.join(DRIVER).exists())
    }

    /// A usable CUDA device, or why there is none.
    pub fn probe() -> Result<CudaDevice, String> {
        if !driver_present() {
            return Err(format!("no CUDA driver ({DRIVER}) was found"));
        }
        let device = CudaDevice::default();
        // cubecl panics when the driver or GPU is unusable: catch it, quietly.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(|| {
            let t = Tensor::<Cuda, 1>::ones([4], &device);
            t.sum().into_scalar()
        });
        std::panic::set_hook(hook);
        match result {
            Ok(_) => Ok(device),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown error".into());
                Err(format!(
                    "the CUDA device could not be used ({})",
                    why.lines().next().unwrap_or("")
                ))
            }
        }
    }
}
