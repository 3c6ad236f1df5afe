//! The multi-threaded page build's CPU work on rayon's pool (issue 11 item 3: the page's
//! CPU path on several threads). The page's module worker is not one of the pool's workers:
//! every parallel op it starts (hundreds per image: each convolution, batch norm and large
//! elementwise pass) is injected into the pool, and the worker then blocks until the op is
//! done and the browser wakes it again. [`on_pool`] runs a whole job (a segmentation's passes)
//! on one of the pool's workers instead, so its parallel ops are split between workers that
//! are already awake, and the module worker waits once per job.

/// Runs `job` on a worker of rayon's pool and returns its result; the calling thread waits.
/// In the single-threaded build it runs `job` where it is.
#[cfg(target_feature = "atomics")]
pub fn on_pool<R: Send>(job: impl FnOnce() -> R + Send) -> R {
    // A scope started outside the pool runs its body on a pool worker.
    rayon::scope(|_| job())
}

/// Runs `job` where it is (the single-threaded build has no pool).
#[cfg(not(target_feature = "atomics"))]
pub fn on_pool<R: Send>(job: impl FnOnce() -> R + Send) -> R {
    job()
}

/// Polls `f` once: the result of a future that needs no waiting (Flex's reads complete when
/// they are called), or `None`.
pub fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
