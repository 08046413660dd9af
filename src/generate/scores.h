#pragma once
// Row kernels shared by the strategies and the processors: softmax, log-softmax, argmax and the
// top-k candidate selection of beam search. They follow PyTorch's CPU float32 arithmetic closely
// enough that token choices and scores match HF within the fixtures' tolerances.
#include <cstdint>
#include <vector>

namespace lmforge::gen {

// In place: x <- softmax(x). Entries at -inf become exactly 0 (HF's "filtered" tokens).
void softmax_inplace(float* x, int n);

// In place: x <- log_softmax(x) = x - max - log(sum(exp(x - max))), as torch computes it.
void log_softmax_inplace(float* x, int n);

// log_softmax(x)[i] alone, computed as log_softmax_inplace computes every entry.
float log_softmax_at(const float* x, int n, int i);

// Index of the largest entry; the first one on ties (torch.argmax).
int argmax(const float* x, int n);

// Indices of the k largest entries, best first (torch.topk(..., sorted=True)); ties keep the
// lower index first. k is clamped to n.
std::vector<int> top_k_indices(const float* x, int n, int k);

}  // namespace lmforge::gen
