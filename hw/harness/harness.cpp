// Host harness of the Verilated TTA core: a C API, bound from Python with ctypes (hw/sim.py).
// Memories and state are read and written through the core's debug port while it is frozen;
// `tta_run` clocks the core until it halts or a cycle limit passes. The off-chip memory the DMA
// unit reaches lives here: a byte array the core reads and writes a row at a time (ext_*); its
// timing is the DMA unit's (hw/rtl/tta_dma.sv).
#include <cstdint>
#include <cstring>
#include <vector>

#include "Vtta_core.h"
#include "verilated.h"

namespace {

struct Tta {
  VerilatedContext ctx;
  Vtta_core* top;
  std::vector<uint8_t> offchip;
};

// A W-bit port as little-endian 32-bit words (W <= 64 is one integer, wider a VlWide).
template <typename T>
void put_words(T& port, const uint32_t* w, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && i < 2; ++i) v |= static_cast<uint64_t>(w[i]) << (32 * i);
  port = static_cast<T>(v);
}
template <std::size_t N>
void put_words(VlWide<N>& port, const uint32_t* w, size_t n) {
  for (size_t i = 0; i < N && i < n; ++i) port[i] = w[i];
}
template <typename T>
void get_words(const T& port, uint32_t* w, size_t n) {
  uint64_t v = static_cast<uint64_t>(port);
  for (size_t i = 0; i < n && i < 2; ++i) w[i] = static_cast<uint32_t>(v >> (32 * i));
}
template <std::size_t N>
void get_words(const VlWide<N>& port, uint32_t* w, size_t n) {
  for (size_t i = 0; i < N && i < n; ++i) w[i] = port[i];
}

constexpr size_t kRowWords = sizeof(Vtta_core::ext_wdata) <= 8 ? 2 : sizeof(Vtta_core::ext_wdata) / 4;

// The DMA's off-chip access of this cycle (the row wraps at the memory's size).
void serve_offchip(Tta* t) {
  Vtta_core* top = t->top;
  if (!(top->ext_re || top->ext_we) || t->offchip.empty()) return;
  const size_t size = t->offchip.size(), bytes = kRowWords * 4;
  uint32_t words[kRowWords] = {};
  auto* b = reinterpret_cast<uint8_t*>(words);
  const size_t addr = top->ext_addr % size;
  if (top->ext_re) {
    for (size_t k = 0; k < bytes; ++k) b[k] = t->offchip[(addr + k) % size];
    put_words(top->ext_rdata, words, kRowWords);
    top->eval();
  } else {
    get_words(top->ext_wdata, words, kRowWords);
    for (size_t k = 0; k < bytes; ++k) t->offchip[(addr + k) % size] = b[k];
  }
}

void tick(Tta* t) {
  Vtta_core* top = t->top;
  top->clk = 0;
  top->eval();
  serve_offchip(t);
  top->clk = 1;
  top->eval();
}

}  // namespace

extern "C" {

void* tta_create() {
  auto* t = new Tta;
  t->top = new Vtta_core(&t->ctx);
  Vtta_core* top = t->top;
  top->clk = 0;
  top->freeze = 1;
  top->dbg_we = 0;
  top->rst = 1;
#ifdef TTA_FAULT_PORT
  top->fault_lane = 0;
  top->fault_and = 0xFFFFFFFFu;  // no stuck bits
  top->fault_or = 0;
#endif
  tick(t);
  top->rst = 0;
  top->eval();
  return t;
}

#ifdef TTA_FAULT_PORT
// Fault-injection builds: the accumulator register of vector-unit lane `lane` reads with the
// bits of ~and_mask stuck at 0 and those of or_mask stuck at 1, until changed.
void tta_set_fault(void* h, uint32_t lane, uint32_t and_mask, uint32_t or_mask) {
  Vtta_core* top = static_cast<Tta*>(h)->top;
  top->fault_lane = lane;
  top->fault_and = and_mask;
  top->fault_or = or_mask;
  top->eval();
}
#endif

void tta_set_offchip(void* h, uint64_t bytes) {
  static_cast<Tta*>(h)->offchip.assign(bytes, 0);
}

// Off-chip bytes [addr, addr + n) (the caller keeps them in range).
void tta_offchip_write(void* h, uint64_t addr, uint64_t n, const uint8_t* data) {
  std::memcpy(static_cast<Tta*>(h)->offchip.data() + addr, data, n);
}

void tta_offchip_read(void* h, uint64_t addr, uint64_t n, uint8_t* out) {
  std::memcpy(out, static_cast<Tta*>(h)->offchip.data() + addr, n);
}

void tta_destroy(void* h) {
  auto* t = static_cast<Tta*>(h);
  t->top->final();
  delete t->top;
  delete t;
}

void tta_reset(void* h) {
  auto* t = static_cast<Tta*>(h);
  Vtta_core* top = t->top;
  top->freeze = 1;
  top->rst = 1;
  tick(t);
  top->rst = 0;
  top->eval();
}

// Memories are addressed by linear 32-bit word: word w is word w % per_entry of entry
// w / per_entry (instruction, data row or state register). Write n words from word `first`.
void tta_write(void* h, uint32_t space, uint32_t first, uint32_t n, uint32_t per_entry,
               const uint32_t* data) {
  auto* t = static_cast<Tta*>(h);
  Vtta_core* top = t->top;
  top->freeze = 1;
  top->dbg_we = 1;
  top->dbg_space = space;
  for (uint32_t k = 0; k < n; ++k) {
    top->dbg_index = (first + k) / per_entry;
    top->dbg_word = (first + k) % per_entry;
    top->dbg_wdata = data[k];
    tick(t);
  }
  top->dbg_we = 0;
  top->eval();
}

void tta_read(void* h, uint32_t space, uint32_t first, uint32_t n, uint32_t per_entry,
              uint32_t* out) {
  Vtta_core* top = static_cast<Tta*>(h)->top;
  top->dbg_we = 0;
  top->dbg_space = space;
  for (uint32_t k = 0; k < n; ++k) {
    top->dbg_index = (first + k) / per_entry;
    top->dbg_word = (first + k) % per_entry;
    top->eval();
    out[k] = top->dbg_rdata;
  }
}

// Clock until halt. Returns the cycles run, or -1 when max_cycles passed without a halt.
int64_t tta_run(void* h, uint64_t max_cycles) {
  auto* t = static_cast<Tta*>(h);
  Vtta_core* top = t->top;
  top->dbg_we = 0;
  if (max_cycles == 0) return top->halted ? 0 : -1;
  // The core samples freeze at each clock edge: an edge that only lowers it runs nothing.
  top->freeze = 0;
  tick(t);
  uint64_t n = 0;
  while (!top->halted) {
    if (n >= max_cycles) {
      return -1;
    }
    if (n + 1 == max_cycles) top->freeze = 1;  // this is the last cycle of the budget
    tick(t);
    ++n;
  }
  top->freeze = 1;
  tick(t);  // a halted core runs nothing: this edge only raises freeze again
  return static_cast<int64_t>(n);
}

}  // extern "C"
