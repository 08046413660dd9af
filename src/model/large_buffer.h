#pragma once
// Storage for the large per-session buffers of inference (KV caches, activations of a prefill),
// which live as long as one generate() call and are written right after they are allocated.
// glibc hands blocks of 32 MiB and more back to the system when they are freed (and trims
// smaller ones from the top of its heap), so each session's buffers are fresh mappings, faulted in
// 4 KiB page by page on first write; on this project's VMs a fault costs ~10 µs, so the ~106 MB
// KV cache of a 12-row GPT-2 124M session took 0.2-0.3 s just to touch. Blocks of
// 2 MiB and more are therefore mapped here 2 MiB-aligned with transparent huge pages requested
// (MADV_HUGEPAGE; the kernel falls back to 4 KiB pages when it has none): ~10 ms for the same
// bytes. Smaller blocks use the ordinary allocator. Contents start zeroed either way (vectors
// value-initialize; fresh anonymous mappings are zero).
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace lmforge {

template <class T>
struct LargeBufferAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = size_t{2} << 20;

  LargeBufferAllocator() = default;
  template <class U>
  LargeBufferAllocator(const LargeBufferAllocator<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return std::allocator<T>().allocate(n);
    // Map one huge page more than needed, then unmap the ends around a 2 MiB-aligned block.
    const size_t size = rounded(bytes);
    void* p = ::mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    const auto base = reinterpret_cast<uintptr_t>(p);
    const uintptr_t aligned = (base + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    if (aligned > base) ::munmap(p, aligned - base);
    if (const size_t tail = base + size + kHugePage - (aligned + size)) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    ::madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
    return reinterpret_cast<T*>(aligned);
  }

  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return std::allocator<T>().deallocate(p, n);
    ::munmap(p, rounded(bytes));
  }

  template <class U>
  bool operator==(const LargeBufferAllocator<U>&) const {
    return true;
  }

 private:
  static size_t rounded(size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }
};

template <class T>
using LargeBuffer = std::vector<T, LargeBufferAllocator<T>>;

}  // namespace lmforge
