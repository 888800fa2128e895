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
        "backend: CPU (flex, {} threads; convolution kernels for {})",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        crate::kernels::InstructionSet::best().name()
    );
    task.run::<CpuAutodiff>(Default::default(), "cpu")
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    use burn::tensor::Tensor;
    use cudarc::driver::result;

    /// Why no GPU can be used, from the driver itself: cubecl would panic on a worker thread
    /// and say only that the thread died.
    fn check_driver() -> Result<(), String> {
        // SAFETY: this loads the CUDA driver library the way burn-cuda will; loading runs
        // only the library's own initialisers.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver (libcuda.so) was found".into());
        }
        let visible = match std::env::var("CUDA_VISIBLE_DEVICES") {
            Ok(v) => format!(" (CUDA_VISIBLE_DEVICES={v:?})"),
            Err(_) => String::new(),
        };
        let no_gpu = |e: result::DriverError| {
            let name = e.error_name().map(|n| n.to_string_lossy().into_owned());
            format!(
                "the CUDA driver found no usable GPU: {}{visible}",
                name.unwrap_or_else(|_| format!("error {}", e.0 as i32))
            )
        };
        result::init().map_err(no_gpu)?;
        match result::device::get_count().map_err(no_gpu)? {
            0 => Err(format!("the CUDA driver sees no GPU{visible}")),
            _ => Ok(()),
        }
    }

    /// A usable CUDA device, or why there is none.
    pub fn probe() -> Result<CudaDevice, String> {
        check_driver()?;
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
