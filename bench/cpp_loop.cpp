// The pure C++ baseline of the simulation-speed benchmark: the same Verilated core (libtta.so)
// and the same program as the Python measurement, timed with no Python in the loop.
// usage: cpp_loop PROGRAM.bin WORDS_PER_INSTRUCTION ROW_WORDS ITERATIONS
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" {
void* tta_create();
void tta_destroy(void*);
void tta_reset(void*);
void tta_write(void*, uint32_t, uint32_t, uint32_t, uint32_t, const uint32_t*);
int64_t tta_run(void*, uint64_t);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s PROGRAM.bin WORDS_PER_INSTRUCTION ROW_WORDS ITERATIONS\n", argv[0]);
    return 2;
  }
  FILE* f = std::fopen(argv[1], "rb");
  if (!f) return 2;
  std::vector<uint32_t> words;
  uint32_t w;
  while (std::fread(&w, 4, 1, f) == 1) words.push_back(w);
  std::fclose(f);
  uint32_t per = std::atoi(argv[2]), row_words = std::atoi(argv[3]);
  uint32_t iterations = std::atoi(argv[4]);
  void* h = tta_create();
  tta_write(h, 0, 0, words.size(), per, words.data());
  tta_write(h, 1, 16, 1, row_words, &iterations);  // the loop count at byte address 64
  tta_reset(h);
  auto t0 = std::chrono::steady_clock::now();
  int64_t cycles = tta_run(h, 1ull << 40);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%lld %.6f\n", static_cast<long long>(cycles), s);
  tta_destroy(h);
  return cycles < 0;
}
