"""Storage faults: a FUSE passthrough that keeps un-fsynced writes in memory and drops them at "power
loss" (LazyFS semantics), and can play a faulty disk (EIO, ENOSPC, slow operations). `lazyfs` is the pure
model, `fuse_ops` the filesystem, `mount` the process and its control channel."""
