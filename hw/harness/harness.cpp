// Host harness of the Verilated TTA core: a C API, bound from Python with ctypes (hw/sim.py).
// Memories and state are read and written through the core's debug port while it is frozen;
// `tta_run` clocks the core until it halts or a cycle limit passes.
#include <cstdint>

#include "Vtta_core.h"
#include "verilated.h"

namespace {

struct Tta {
  VerilatedContext ctx;
  Vtta_core* top;
};

void tick(Vtta_core* top) {
  top->clk = 0;
  top->eval();
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
  tick(top);
  top->rst = 0;
  top->eval();
  return t;
}

void tta_destroy(void* h) {
  auto* t = static_cast<Tta*>(h);
  t->top->final();
  delete t->top;
  delete t;
}

void tta_reset(void* h) {
  Vtta_core* top = static_cast<Tta*>(h)->top;
  top->freeze = 1;
  top->rst = 1;
  tick(top);
  top->rst = 0;
  top->eval();
}

// Memories are addressed by linear 32-bit word: word w is word w % per_entry of entry
// w / per_entry (instruction, data row or state register). Write n words from word `first`.
void tta_write(void* h, uint32_t space, uint32_t first, uint32_t n, uint32_t per_entry,
               const uint32_t* data) {
  Vtta_core* top = static_cast<Tta*>(h)->top;
  top->freeze = 1;
  top->dbg_we = 1;
  top->dbg_space = space;
  for (uint32_t k = 0; k < n; ++k) {
    top->dbg_index = (first + k) / per_entry;
    top->dbg_word = (first + k) % per_entry;
    top->dbg_wdata = data[k];
    tick(top);
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
  Vtta_core* top = static_cast<Tta*>(h)->top;
  top->dbg_we = 0;
  top->freeze = 0;
  uint64_t n = 0;
  while (!top->halted) {
    if (n >= max_cycles) {
      top->freeze = 1;
      top->eval();
      return -1;
    }
    tick(top);
    ++n;
  }
  top->freeze = 1;
  top->eval();
  return static_cast<int64_t>(n);
}

}  // extern "C"
