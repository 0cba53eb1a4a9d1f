// A memory of ROWS rows of WIDTH bits: five asynchronous read ports, two masked write ports (the
// second wins where both write the same bits in one cycle), a whole-row write port (the DMA's;
// never in the same row as the others), and a
// 32-bit debug port (word `dbg_word` of row `dbg_row`) through which the host harness loads and
// reads it. Kept in its own module so that area estimates can treat memories as macros.
module tta_mem #(
    parameter int ROWS = 256,
    parameter int WIDTH = 64,
    parameter int AW = 8
) (
    input  logic             clk,
    input  logic [   AW-1:0] ra,
    output logic [WIDTH-1:0] rda,
    input  logic [   AW-1:0] rb,
    output logic [WIDTH-1:0] rdb,
    input  logic [   AW-1:0] rc,
    output logic [WIDTH-1:0] rdc,
    input  logic [   AW-1:0] rd,
    output logic [WIDTH-1:0] rdd,
    input  logic [   AW-1:0] re,
    output logic [WIDTH-1:0] rde,
    input  logic             we,
    input  logic [   AW-1:0] wa,
    input  logic [WIDTH-1:0] wdata,
    input  logic [WIDTH-1:0] wmask,
    input  logic             we2,
    input  logic [   AW-1:0] wa2,
    input  logic [WIDTH-1:0] wdata2,
    input  logic [WIDTH-1:0] wmask2,
    input  logic             we3,
    input  logic [   AW-1:0] wa3,
    input  logic [WIDTH-1:0] wdata3,
    input  logic             dbg_we,
    input  logic [   AW-1:0] dbg_row,
    input  logic [      7:0] dbg_word,
    input  logic [     31:0] dbg_wdata,
    output logic [     31:0] dbg_rdata
);
  logic [WIDTH-1:0] mem[ROWS];

  assign rda = mem[ra];
  assign rdb = mem[rb];
  assign rdc = mem[rc];
  assign rdd = mem[rd];
  assign rde = mem[re];
  assign dbg_rdata = mem[dbg_row][32*dbg_word+:32];

  always_ff @(posedge clk) begin
    if (we && !(we2 && wa2 == wa)) mem[wa] <= (mem[wa] & ~wmask) | (wdata & wmask);
    if (we2 && we && wa2 == wa)
      mem[wa2] <= (((mem[wa] & ~wmask) | (wdata & wmask)) & ~wmask2) | (wdata2 & wmask2);
    else if (we2) mem[wa2] <= (mem[wa2] & ~wmask2) | (wdata2 & wmask2);
    if (we3) mem[wa3] <= wdata3;
    if (dbg_we) mem[dbg_row][32*dbg_word+:32] <= dbg_wdata;
  end
endmodule
