// DMA unit: whole data-memory rows to and from the off-chip memory, one transfer at a time, in
// the background (semantics: hw/golden.py DmaUnit; reference: hw/ISA.md).
//
// load / store (trigger value = first data row): shape[11:0] rows, row i between data row
// trigger + i and off-chip bytes ext + i * stride, stride = shape[31:12] bytes (0: one row). A
// load reads the off-chip memory and writes row i at the end of cycle t0 + LATENCY + i * CPR,
// a store reads row i in cycle t0 + 1 + i * CPR and writes it off-chip; t0 is the trigger's
// cycle. The off-chip memory itself lives in the host harness (ext_* ports). The unit counts
// clock cycles (`run`), so it goes on while the core stalls; `busy` holds until its last row has
// landed (a store: LATENCY cycles after its last read). The core stalls a DMA trigger (load,
// store or wait) while busy.
module tta_dma #(
    parameter int W = 64,
    parameter int ROW_AW = 8,
    parameter int LATENCY = 30,
    parameter int CPR = 1  // cycles per row: W / off-chip bits per cycle (a power of two)
) (
    input  logic              clk,
    input  logic              rst,
    input  logic              run,  // a clock cycle of the running core (stalled or not)
    input  logic              en,   // the core executes its instruction this cycle
    input  logic              ext_we_op,
    input  logic [31:0]       ext_d,
    input  logic              shape_we,
    input  logic [31:0]       shape_d,
    input  logic              trig,
    input  logic [31:0]       trig_d,
    input  logic [OPB_DMA-1:0] op,
    output logic              busy,
    output logic              mem_re,   // the row access of this cycle
    output logic              mem_we,
    output logic [ROW_AW-1:0] mem_row,
    input  logic [W-1:0]      mem_rdata,
    output logic [W-1:0]      mem_wdata,
    output logic              ext_re,   // the off-chip access of this cycle
    output logic              ext_we,
    output logic [31:0]       ext_addr,
    input  logic [W-1:0]      ext_rdata,
    output logic [W-1:0]      ext_wdata
);
  `include "tta_ops.svh"
  localparam int CB = $clog2(CPR) > 0 ? $clog2(CPR) : 1;

  logic [31:0] ext, shape, xv, sv;
  logic active, load;
  logic [ROW_AW-1:0] row0;
  logic [31:0] ext0, stride, t, last;
  logic [11:0] n;
  logic [31:0] d, i;

  always_comb begin
    xv = ext_we_op ? ext_d : ext;
    sv = shape_we ? shape_d : shape;
    d = t - (load ? 32'(LATENCY) : 32'd1);
    i = d >> $clog2(CPR);
    // the cycle of the last row, and the last busy cycle, counted from the trigger
    last = (load ? 32'(LATENCY) : 32'd1) + 32'(n - 12'd1) * 32'(CPR);
    busy = active && t <= last + (load ? 32'd0 : 32'(LATENCY - 1));
    mem_re = 1'b0;
    mem_we = 1'b0;
    if (active && run && !d[31] && (CPR == 1 || d[CB-1:0] == '0) && i < 32'(n)) begin
      mem_we = load;
      mem_re = !load;
    end
    mem_row = row0 + ROW_AW'(i);
    ext_addr = ext0 + i * stride;
    ext_re = mem_we;
    ext_we = mem_re;
    mem_wdata = ext_rdata;
    ext_wdata = mem_rdata;
  end

  wire start = en && trig && op != OP_DMA_WAIT && sv[11:0] != 12'd0;
  always_ff @(posedge clk) begin
    if (rst) begin
      {ext, shape, ext0, stride, t} <= '0;
      {active, load} <= '0;
      row0 <= '0;
      n <= '0;
    end else begin
      if (en && ext_we_op) ext <= ext_d;
      if (en && shape_we) shape <= shape_d;
      if (run && active) begin
        t <= t + 1;
        if (!busy) active <= 1'b0;
      end
      if (start) begin
        active <= 1'b1;
        load <= op == OP_DMA_LOAD;
        row0 <= trig_d[ROW_AW-1:0];
        ext0 <= xv;
        n <= sv[11:0];
        stride <= sv[31:12] == '0 ? 32'(W / 8) : {12'b0, sv[31:12]};
        t <= 32'd1;  // the cycle after the trigger
      end
    end
  end
endmodule
