//! The global allocator: Redis' inside a server, the system's elsewhere.
//! Here because it is the one place that must decide before any context
//! exists, from the API table alone.

use redis_module::raw;

/// Redis' allocator once the module is loaded (so memory shows in
/// `used_memory` and `maxmemory` applies), the system one otherwise: unit
/// tests, benches and fuzz targets link this crate without a server.
pub struct ModuleAlloc;

fn in_redis() -> bool {
    // SAFETY: written once by Redis when the module is initialised, before
    // any allocation of ours, and never again.
    unsafe { (*std::ptr::addr_of!(raw::RedisModule_Alloc)).is_some() }
}

// SAFETY: both allocators honour the layout; a pointer is always freed by
// the allocator that made it, since `in_redis` never changes once the
// module's first allocation is made.
unsafe impl std::alloc::GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use redis_module::alloc::RedisAlloc;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.alloc(layout)
            } else {
                std::alloc::System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        use redis_module::alloc::RedisAlloc;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.dealloc(ptr, layout)
            } else {
                std::alloc::System.dealloc(ptr, layout)
            }
        }
    }
}
