#pragma once
// `--model NAME` for models already downloaded by Hugging Face tools: the offline lookup that
// transformers 4.43.4's from_pretrained does in the local Hub cache. Nothing is ever downloaded.
#include <filesystem>
#include <string>

namespace lmforge {

// The cache folder from_pretrained reads when no cache_dir is given, in transformers 4.43.4's order:
//   $TRANSFORMERS_CACHE, $PYTORCH_TRANSFORMERS_CACHE, $PYTORCH_PRETRAINED_BERT_CACHE (transformers'
//   deprecated names, still honoured by that version), else huggingface_hub's HF_HUB_CACHE:
//   $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
//   ~/.cache/huggingface/hub. As huggingface_hub does, "~" and $VARS are expanded in HF_HOME and
//   HF_HUB_CACHE (and the values they default to), not in the transformers variables. Empty
//   variables count as set (Python's os.getenv).
std::filesystem::path hub_cache_dir();

// NAME as from_pretrained resolves it offline:
//   - an existing folder is returned as given;
//   - otherwise NAME must be a Hub repo id, `NAME` or `ORG/NAME`, optionally `@REVISION` (a branch,
//     tag or commit hash; default `main`). Its folder is <cache>/models--ORG--NAME (models--NAME
//     without an organisation); refs/<REVISION> holds the commit hash of the snapshot, and a
//     REVISION with no ref file is taken as the hash itself; the result is snapshots/<hash>/.
// Throws a one-line lmforge::Error when NAME is neither a folder nor cached, naming the cache
// folder searched and saying that nothing is downloaded.
std::filesystem::path resolve_model_path(const std::string& name);

}  // namespace lmforge
