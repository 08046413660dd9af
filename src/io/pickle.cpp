#include "io/pickle.h"

#include <cstring>
#include <memory>
#include <unordered_map>

#include "io/io_util.h"

namespace lmforge::io {

namespace {

// Every value the machine can hold. Python objects that torch's pickles never need (sets, bytes,
// arbitrary instances) do not exist here, so no opcode can produce them.
enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };

// The allow-list: the only callables a pickle may name. Each is interpreted here, never called.
enum class Callable : uint8_t { RebuildTensorV2, RebuildParameter, OrderedDict, StorageType };

struct Value;

// The arguments of _rebuild_tensor_v2 that define the view.
struct TensorInfo {
  const Value* storage;
  uint64_t offset;
  std::vector<int64_t> sizes, strides;
};

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;              // Int, Bool
  std::string s;              // Str; the storage key of a Storage
  std::vector<Value*> items;  // Tuple, List; Dict as key, value, key, value, ...
  Callable callable{};        // Global
  DType dtype = DType::F32;   // Global StorageType, Storage
  uint64_t numel = 0;         // Storage
  std::unique_ptr<TensorInfo> tensor;
};

// Values live in an arena and refer to each other by raw pointer, so reference cycles (a list
// appended to itself via the memo) and very deep nesting cannot leak or overflow the stack on
// destruction. Capping the count bounds memory for a hostile pickle; real state dicts use ~12
// values per tensor.
constexpr size_t kMaxValues = size_t{1} << 21;

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

// torch.<X>Storage classes and the element type of their bytes.
bool storage_dtype(const std::string& name, DType* out) {
  static const std::pair<const char*, DType> kStorages[] = {
      {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16},  {"BFloat16Storage", DType::BF16},
      {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
      {"ShortStorage", DType::I16}, {"CharStorage", DType::I8},   {"ByteStorage", DType::U8},
      {"BoolStorage", DType::BOOL},
  };
  for (const auto& [n, dt] : kStorages)
    if (name == n) {
      *out = dt;
      return true;
    }
  return false;
}

class Machine {
 public:
  Machine(std::span<const std::byte> bytes, const std::string& where) : bytes_(bytes), where_(where) {}

  // Runs to STOP and returns the pickled object.
  const Value* run() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      if (op == '.') return pop();  // STOP
      step(op);
    }
  }

  [[noreturn]] void error(const std::string& what) const {
    fail(where_, "data.pkl: " + what + " (at byte " + std::to_string(op_pos_) + ")");
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& where_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;  // stack heights at each MARK
  std::unordered_map<uint64_t, Value*> memo_;

  // ---- reading the byte stream (all bounds-checked) ----
  const std::byte* take(uint64_t n) {
    if (n > bytes_.size() - pos_) error("truncated pickle");
    const std::byte* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t le(int n) {  // little-endian unsigned of n bytes
    const std::byte* p = take(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
  }
  uint8_t u8() { return static_cast<uint8_t>(le(1)); }
  std::string str(uint64_t n) {
    const std::byte* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  std::string line() {  // GLOBAL's "module\n" and "name\n"
    const size_t start = pos_;
    while (true) {
      if (static_cast<char>(*take(1)) == '\n') return std::string(reinterpret_cast<const char*>(bytes_.data() + start), pos_ - start - 1);
    }
  }

  // ---- the stack; pops never reach below the innermost MARK, as in CPython ----
  Value* make(Kind k) {
    if (arena_.size() >= kMaxValues) error("too many objects");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) { stack_.push_back(v); }
  Value* top() {
    if (stack_.size() <= floor()) error("stack underflow");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* expect(Value* v, Kind k, const char* what) {
    if (v->kind != k) error(std::string(what) + " must be a " + kind_name(k) + ", got " + kind_name(v->kind));
    return v;
  }
  Value* make_int(int64_t i) {
    Value* v = make(Kind::Int);
    v->i = i;
    return v;
  }
  Value* make_str(std::string s) {
    Value* v = make(Kind::Str);
    v->s = std::move(s);
    return v;
  }
  Value* make_tuple(std::vector<Value*> items) {
    Value* v = make(Kind::Tuple);
    v->items = std::move(items);
    return v;
  }
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  Value* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) error("memo entry " + std::to_string(idx) + " is not defined");
    return it->second;
  }

  // LONG1/LONG4: little-endian two's complement; torch only writes small ones.
  Value* long_int(uint64_t n) {
    if (n > 8) error("integer of " + std::to_string(n) + " bytes is too large");
    const std::byte* p = take(n);
    uint64_t v = 0;
    for (uint64_t i = n; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(p[i]);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return make_int(static_cast<int64_t>(v));
  }

  void step(uint8_t op);
  void global(const std::string& module, const std::string& name);
  void reduce();
  void build();
  void persistent_load();
  Value* rebuild_tensor(const Value* args);
};

void Machine::step(uint8_t op) {
  switch (op) {
    case 0x80: {  // PROTO
      const uint8_t v = u8();
      if (v > 5) error("unsupported pickle protocol " + std::to_string(v));
      return;
    }
    case 0x95: take(8); return;  // FRAME: only a buffering hint
    case '(': marks_.push_back(stack_.size()); return;  // MARK
    case '}': push(make(Kind::Dict)); return;          // EMPTY_DICT
    case ']': push(make(Kind::List)); return;          // EMPTY_LIST
    case ')': push(make(Kind::Tuple)); return;         // EMPTY_TUPLE
    case 'N': push(make(Kind::None)); return;          // NONE
    case 0x88:                                          // NEWTRUE
    case 0x89: {                                        // NEWFALSE
      Value* v = make(Kind::Bool);
      v->i = op == 0x88;
      push(v);
      return;
    }
    case 'K': push(make_int(static_cast<int64_t>(le(1)))); return;  // BININT1
    case 'M': push(make_int(static_cast<int64_t>(le(2)))); return;  // BININT2
    case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); return;  // BININT
    case 0x8a: push(long_int(le(1))); return;  // LONG1
    case 0x8b: push(long_int(le(4))); return;  // LONG4
    case 'G':  // BINFLOAT: state dicts never need the value, only a well-formed stream
      take(8);
      push(make(Kind::Float));
      return;
    case 0x8c: push(make_str(str(le(1)))); return;  // SHORT_BINUNICODE
    case 'X': push(make_str(str(le(4)))); return;    // BINUNICODE
    case 0x8d: push(make_str(str(le(8)))); return;   // BINUNICODE8
    case 't': push(make_tuple(pop_mark())); return;  // TUPLE
    case 0x85: {                                      // TUPLE1
      Value* a = pop();
      push(make_tuple({a}));
      return;
    }
    case 0x86: {  // TUPLE2
      Value* b = pop();
      Value* a = pop();
      push(make_tuple({a, b}));
      return;
    }
    case 0x87: {  // TUPLE3
      Value* c = pop();
      Value* b = pop();
      Value* a = pop();
      push(make_tuple({a, b, c}));
      return;
    }
    case 'a': {  // APPEND
      Value* v = pop();
      expect(top(), Kind::List, "APPEND target")->items.push_back(v);
      return;
    }
    case 'e': {  // APPENDS
      auto items = pop_mark();
      Value* list = expect(top(), Kind::List, "APPENDS target");
      list->items.insert(list->items.end(), items.begin(), items.end());
      return;
    }
    case 's': {  // SETITEM
      Value* v = pop();
      Value* k = pop();
      Value* d = expect(top(), Kind::Dict, "SETITEM target");
      d->items.push_back(k);
      d->items.push_back(v);
      return;
    }
    case 'u': {  // SETITEMS
      auto items = pop_mark();
      if (items.size() % 2 != 0) error("SETITEMS with an odd number of items");
      Value* d = expect(top(), Kind::Dict, "SETITEMS target");
      d->items.insert(d->items.end(), items.begin(), items.end());
      return;
    }
    case 'q': memo_put(le(1)); return;            // BINPUT
    case 'r': memo_put(le(4)); return;            // LONG_BINPUT
    case 0x94: memo_put(memo_.size()); return;    // MEMOIZE
    case 'h': push(memo_get(le(1))); return;      // BINGET
    case 'j': push(memo_get(le(4))); return;      // LONG_BINGET
    case '0':                                     // POP (pops a MARK when the frame is empty)
      if (stack_.size() > floor())
        stack_.pop_back();
      else
        pop_mark();
      return;
    case '1': pop_mark(); return;  // POP_MARK
    case '2': push(top()); return;  // DUP
    case 'c': {                     // GLOBAL "module\nname\n"
      std::string module = line();
      std::string name = line();
      global(module, name);
      return;
    }
    case 0x93: {  // STACK_GLOBAL
      Value* name = expect(pop(), Kind::Str, "STACK_GLOBAL name");
      Value* module = expect(pop(), Kind::Str, "STACK_GLOBAL module");
      global(module->s, name->s);
      return;
    }
    case 'R': reduce(); return;
    case 'b': build(); return;
    case 'Q': persistent_load(); return;  // BINPERSID
    default: {
      static const char* hex = "0123456789abcdef";
      error(std::string("unsupported pickle opcode 0x") + hex[op >> 4] + hex[op & 15]);
    }
  }
}

// Resolves a global against the allow-list; everything else (os.system, builtins.eval,
// torch.load ...) is refused before it can be used.
void Machine::global(const std::string& module, const std::string& name) {
  Value* g = make(Kind::Global);
  if (module == "torch._utils" && name == "_rebuild_tensor_v2")
    g->callable = Callable::RebuildTensorV2;
  else if (module == "torch._utils" && name == "_rebuild_parameter")
    g->callable = Callable::RebuildParameter;
  else if (module == "collections" && name == "OrderedDict")
    g->callable = Callable::OrderedDict;
  else if (module == "torch" && storage_dtype(name, &g->dtype))
    g->callable = Callable::StorageType;
  else
    fail(where_, "pickle references disallowed global '" + printable(module + "." + name) + "'");
  push(g);
}

// REDUCE: callable(*args), for the allow-listed callables only.
void Machine::reduce() {
  Value* args = expect(pop(), Kind::Tuple, "REDUCE arguments");
  Value* fn = expect(pop(), Kind::Global, "REDUCE callable");
  switch (fn->callable) {
    case Callable::OrderedDict:
      if (!args->items.empty()) error("OrderedDict with constructor arguments is not supported");
      push(make(Kind::Dict));
      return;
    case Callable::RebuildTensorV2:
      push(rebuild_tensor(args));
      return;
    case Callable::RebuildParameter:  // (data, requires_grad, backward_hooks) -> data
      if (args->items.size() != 3) error("_rebuild_parameter expects 3 arguments");
      push(expect(args->items[0], Kind::Tensor, "_rebuild_parameter data"));
      return;
    case Callable::StorageType:
      error("storage classes cannot be called");
  }
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
// Only records the view; bounds are checked against the storage once its bytes are known.
Value* Machine::rebuild_tensor(const Value* args) {
  const auto& a = args->items;
  if (a.size() != 6 && a.size() != 7) error("_rebuild_tensor_v2 expects 6 or 7 arguments, got " + std::to_string(a.size()));
  auto info = std::make_unique<TensorInfo>();
  info->storage = expect(a[0], Kind::Storage, "tensor storage");
  const int64_t offset = expect(a[1], Kind::Int, "tensor storage offset")->i;
  if (offset < 0) error("negative storage offset");
  info->offset = static_cast<uint64_t>(offset);
  const Value* sizes = expect(a[2], Kind::Tuple, "tensor size");
  const Value* strides = expect(a[3], Kind::Tuple, "tensor stride");
  if (sizes->items.size() != strides->items.size()) error("tensor size and stride have different lengths");
  for (size_t i = 0; i < sizes->items.size(); ++i) {
    const int64_t s = expect(sizes->items[i], Kind::Int, "tensor size entry")->i;
    const int64_t st = expect(strides->items[i], Kind::Int, "tensor stride entry")->i;
    if (s < 0) error("negative tensor size " + std::to_string(s));
    if (st < 0) error("negative tensor stride " + std::to_string(st));
    info->sizes.push_back(s);
    info->strides.push_back(st);
  }
  Value* t = make(Kind::Tensor);
  t->tensor = std::move(info);
  return t;
}

// BUILD sets attributes: OrderedDict._metadata on state dicts, tensor state on newer torch. We keep
// neither, but accept only those two targets with a plain state.
void Machine::build() {
  Value* state = pop();
  const Value* obj = top();
  if (obj->kind != Kind::Dict && obj->kind != Kind::Tensor) error(std::string("BUILD on a ") + kind_name(obj->kind));
  if (state->kind != Kind::Dict && state->kind != Kind::None && state->kind != Kind::Tuple)
    error(std::string("BUILD with a ") + kind_name(state->kind) + " state");
}

// BINPERSID with torch's id ('storage', storage_type, key, location, numel): a reference to the
// zip entry <archive>/data/<key> holding numel elements of the storage type's dtype.
void Machine::persistent_load() {
  const Value* pid = expect(pop(), Kind::Tuple, "persistent id");
  const auto& a = pid->items;
  if (a.size() != 5 || a[0]->kind != Kind::Str || a[0]->s != "storage") error("persistent id is not ('storage', ...)");
  const Value* type = expect(a[1], Kind::Global, "storage type");
  if (type->callable != Callable::StorageType) error("persistent id names a non-storage type");
  const Value* key = expect(a[2], Kind::Str, "storage key");
  expect(a[3], Kind::Str, "storage location");
  const int64_t numel = expect(a[4], Kind::Int, "storage size")->i;
  if (numel < 0) error("negative storage size");
  Value* s = make(Kind::Storage);
  s->s = key->s;
  s->dtype = type->dtype;
  s->numel = static_cast<uint64_t>(numel);
  push(s);
}

}  // namespace

std::vector<PickledTensor> parse_torch_pickle(std::span<const std::byte> bytes, const std::string& where) {
  Machine m(bytes, where);
  const Value* root = m.run();
  if (root->kind != Kind::Dict) fail(where, std::string("data.pkl: expected a dict of tensors, got a ") + kind_name(root->kind));
  std::vector<PickledTensor> out;
  std::unordered_map<std::string, size_t> index;  // name -> position in out (last assignment wins)
  for (size_t i = 0; i + 1 < root->items.size(); i += 2) {
    const Value* k = root->items[i];
    const Value* v = root->items[i + 1];
    if (k->kind != Kind::Str) fail(where, std::string("data.pkl: state dict key is a ") + kind_name(k->kind) + ", not a str");
    if (v->kind != Kind::Tensor)
      fail(where, "data.pkl: state dict entry '" + printable(k->s) + "' is a " + kind_name(v->kind) + ", not a tensor");
    PickledTensor t;
    t.name = k->s;
    t.storage_key = v->tensor->storage->s;
    t.dtype = v->tensor->storage->dtype;
    t.storage_numel = v->tensor->storage->numel;
    t.offset = v->tensor->offset;
    t.sizes = v->tensor->sizes;
    t.strides = v->tensor->strides;
    auto [it, inserted] = index.emplace(t.name, out.size());
    if (inserted)
      out.push_back(std::move(t));
    else
      out[it->second] = std::move(t);
  }
  return out;
}

}  // namespace lmforge::io
