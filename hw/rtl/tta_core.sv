// The TTA core: instruction fetch and decode, move buses, register files, function units, data
// memory, event counters, and a debug port through which the host harness loads and reads
// memories and state while the core is frozen. The semantics are defined by hw/golden.py.
module tta_core (
    input  logic        clk,
    input  logic        rst,
    input  logic        freeze,     // hold all architectural state
    input  logic        dbg_we,
    input  logic [1:0]  dbg_space,  // 0 instruction memory, 1 data memory, 2 state
    input  logic [31:0] dbg_index,  // instruction, data row, or state register
    input  logic [7:0]  dbg_word,   // 32-bit word within the instruction or row
    input  logic [31:0] dbg_wdata,
    output logic [31:0] dbg_rdata,
    output logic        halted,
    // the off-chip memory (in the host harness), driven by the DMA unit
    output logic        ext_re,
    output logic        ext_we,
    output logic [31:0] ext_addr,
    input  logic [W-1:0] ext_rdata,
    output logic [W-1:0] ext_wdata
`ifdef TTA_FAULT_PORT
    ,  // fault-injection builds only (hw/build.py): stuck-at bits of one vector-unit lane
    input  logic [31:0] fault_lane,
    input  logic [31:0] fault_and,
    input  logic [31:0] fault_or
`endif
);
  `include "tta_ops.svh"
  `include "tta_params.svh"
  `include "tta_ports.svh"

  localparam int IWP = IWW * 32;  // instruction width padded to whole words

  logic [IMEM_AW-1:0] pc;
  logic [31:0] rf[NR];
  logic [NBOOL-1:0] bregs;
  logic [63:0] counters[NCNT];

  // freeze as of the last clock edge: run depends on no input of the core, so Verilator computes
  // the datapath once a cycle, not a second time in its input-change region. The harness lowers
  // freeze one edge before a run, raises it in the run's last cycle and holds it through reset.
  logic frozen;
  initial frozen = 1'b1;  // frozen from power-up until the harness's first edge
  always_ff @(posedge clk) frozen <= freeze;
  wire run = !frozen && !halted;
  localparam int BK = BANK_BITS > 0 ? BANK_BITS : 1;  // bank-index bits (1 when unbanked)
  logic go;  // run, and not stalled on a bank conflict this cycle
  logic [IWP-1:0] instr;
  logic [31:0] imem_dbg_rdata, dmem_dbg_rdata;
  logic [W-1:0] lsu_rdata, vmac_rdata;
  logic [2*W-1:0] win_rdata;

  // ---- memories ---------------------------------------------------------------------------
  tta_mem #(.ROWS(IMEM_DEPTH), .WIDTH(IWP), .AW(IMEM_AW)) u_imem (
      .clk, .ra(pc), .rda(instr), .rb(pc), .rdb(), .rc(pc), .rdc(), .rd(pc), .rdd(), .re(pc),
      .rde(), .we(1'b0), .wa('0), .wdata('0), .wmask('0), .we3(1'b0), .wa3('0), .wdata3('0),
      .we2(1'b0), .wa2('0), .wdata2('0), .wmask2('0),
      .dbg_we(dbg_we && dbg_space == 2'd0), .dbg_row(dbg_index[IMEM_AW-1:0]), .dbg_word,
      .dbg_wdata, .dbg_rdata(imem_dbg_rdata));

  // ---- decode: one move per bus ---------------------------------------------------------
  logic [DST_BITS-1:0] dst[NB];
  logic [SRC_BITS-1:0] src[NB];
  logic [GUARD_BITS-1:0] grd[NB];
  logic act[NB];  // the move executes this cycle
  logic [31:0] val[NB];  // the value it carries
  logic is_reg_src[NB];
  `TTA_RESULTS_DECL  // result ports, <unit>_<port>

  always_comb begin
    for (int b = 0; b < NB; b++) begin
      logic [31:0] g, sid;
      logic signed [IMM_BITS-1:0] imm;
      logic signed [31:0] imm32;
      logic gok;
      dst[b] = instr[b*SLOT_BITS+:DST_BITS];
      src[b] = instr[b*SLOT_BITS+DST_BITS+:SRC_BITS];
      grd[b] = instr[b*SLOT_BITS+DST_BITS+SRC_BITS+:GUARD_BITS];
      g = 32'(grd[b]);
      if (g == 0) gok = 1'b1;
      else if ((g - 1) / 2 < NBOOL) gok = bregs[(g-1)/2] ^ g[0] ^ 1'b1;
      else gok = 1'b0;
      act[b] = run && dst[b] != 0 && gok;
      imm = src[b][IMM_BITS-1:0];
      imm32 = 32'(imm);
      sid = 32'(src[b][SRC_VBITS-1:0]);
      is_reg_src[b] = !src[b][SRC_BITS-1] && sid < NR;
      if (src[b][SRC_BITS-1]) val[b] = imm32;
      else if (sid < NR) val[b] = rf[sid];
      else if (sid < NR + NBOOL) val[b] = {31'b0, bregs[sid-NR]};
      `TTA_SOURCES
      else val[b] = '0;
    end
  end

  // ---- interconnect: port writes; when several slots write one port, the highest wins ----
  // Generated from hw/units.py (tta_ports.svh): one block per operand and trigger port.
  `TTA_PORTS_DECL

  always_comb begin
    `TTA_PORTS_CLEAR
    for (int b = 0; b < NB; b++) begin
      logic [31:0] d;
      d = 32'(dst[b]);
      if (act[b]) begin
        `TTA_PORTS_DECODE
      end
    end
  end

  // ---- function units ---------------------------------------------------------------------
  logic [DMEM_AW-1:0] lsu_row, vmac_row, win_row;
  logic lsu_we, vmac_mac8, vmac_mac2, vmac_mac1, vmac_group, vmac_mem_read, vmac_we, win_read;
  logic [DMEM_AW-1:0] vmac_wrow;
  logic [W-1:0] vmac_wdata, vmac_wmask;
  logic [31:0] vmac_wbits;
  logic [W-1:0] lsu_wdata, lsu_wmask;
  logic [31:0] lsu_rbits, lsu_wbits;
  logic dma_busy, dma_re, dma_we;
  logic [DMEM_AW-1:0] dma_row;
  logic [W-1:0] dma_rdata, dma_wdata;

  generate
    if (HAS_ALU) begin : g_alu
      tta_alu #(.LAT(LAT_ALU)) u_alu (
          .clk, .rst, .en(go), .in1_we(alu_in1_we), .in1_d(alu_in1_d), .trig(alu_trig),
          .trig_d(alu_d), .op(alu_op), .res(alu_res));
    end else begin : g_no_alu
      assign alu_res = '0;
    end
    if (HAS_LSU) begin : g_lsu
      tta_lsu #(.LAT(LAT_LSU), .W(W), .ROW_AW(DMEM_AW)) u_lsu (
          .clk, .rst, .en(go), .data_we(lsu_data_we), .data_d(lsu_data_d), .base_we(lsu_base_we),
          .base_d(lsu_base_d), .trig(lsu_trig),
          .trig_d(lsu_d), .op(lsu_op), .res(lsu_res), .mem_row(lsu_row), .mem_rdata(lsu_rdata),
          .mem_we(lsu_we), .mem_wdata(lsu_wdata), .mem_wmask(lsu_wmask), .read_bits(lsu_rbits),
          .write_bits(lsu_wbits));
    end else begin : g_no_lsu
      assign {lsu_res, lsu_row, lsu_we, lsu_wdata, lsu_wmask, lsu_rbits, lsu_wbits} = '0;
    end
    if (HAS_VMAC) begin : g_vmac
      tta_vmac #(.LAT(LAT_VMAC), .W(W), .ROW_AW(DMEM_AW)) u_vmac (
          .clk, .rst, .en(go), .x_we(vmac_x_we), .x_d(vmac_x_d), .xb_we(vmac_xb_we),
          .xb_d(vmac_xb_d), .base_we(vmac_base_we), .base_d(vmac_base_d),
          .prm_we(vmac_prm_we), .prm_d(vmac_prm_d), .cfg_we(vmac_cfg_we), .cfg_d(vmac_cfg_d),
          .vg_we(vmac_vg_we), .vg_d(vmac_vg_d), .wb_we(vmac_wb_we), .wb_d(vmac_wb_d),
          .ab_we(vmac_ab_we), .ab_d(vmac_ab_d), .trig(vmac_trig), .trig_d(vmac_d),
          .op(vmac_op), .res(vmac_res), .mem_row(vmac_row), .mem_rdata(vmac_rdata),
          .win_row(win_row), .win_rdata(win_rdata), .mem_we(vmac_we), .mem_wrow(vmac_wrow),
          .mem_wdata(vmac_wdata), .mem_wmask(vmac_wmask), .mem_read(vmac_mem_read),
          .win_read(win_read),
          .write_bits(vmac_wbits), .mac8(vmac_mac8), .mac2(vmac_mac2), .mac1(vmac_mac1),
          .group(vmac_group)
`ifdef TTA_FAULT_PORT
          , .fault_lane, .fault_and, .fault_or
`endif
          );
    end else begin : g_no_vmac
      assign {vmac_res, vmac_row, vmac_mac8, vmac_mac2, vmac_mac1, vmac_group, vmac_mem_read,
              vmac_we, vmac_wrow, vmac_wdata, vmac_wmask, vmac_wbits, win_row, win_read} = '0;
    end
    if (HAS_DMA) begin : g_dma
      tta_dma #(.W(W), .ROW_AW(DMEM_AW), .LATENCY(DMA_LATENCY), .CPR(DMA_CPR)) u_dma (
          .clk, .rst, .run, .en(go), .ext_we_op(dma_ext_we), .ext_d(dma_ext_d),
          .shape_we(dma_shape_we), .shape_d(dma_shape_d), .trig(dma_trig), .trig_d(dma_d),
          .op(dma_op), .busy(dma_busy), .mem_re(dma_re), .mem_we(dma_we), .mem_row(dma_row),
          .mem_rdata(dma_rdata), .mem_wdata(dma_wdata), .ext_re, .ext_we, .ext_addr, .ext_rdata,
          .ext_wdata);
    end else begin : g_no_dma
      assign {dma_busy, dma_re, dma_we, dma_row, dma_wdata, ext_re, ext_we, ext_addr,
              ext_wdata} = '0;
    end
  endgenerate

  // ---- bank conflicts ---------------------------------------------------------------------
  // The data memory has 2^BANK_BITS banks of consecutive rows, each with one read and one write
  // port: the LSU meeting the vector unit's row or window reads (or its writes) in one bank in
  // one cycle stalls the whole core for a cycle (nothing changes, `stall_cycles` counts it); the
  // instruction then executes. The window's two rows are one double-width access.
  // The DMA's row access of a cycle meeting one of the instruction's in its bank and direction,
  // or a DMA trigger while it is busy, stalls the core until it does not (`dma_stall_cycles`).
  logic stalled, conflict, dma_block;
  logic [DMEM_AW-1:0] win_row2;
  assign win_row2 = win_row + 1'b1;
  logic [BK-1:0] b_lsu, b_vrow, b_vwrow, b_win, b_win2, b_dma;  // banks of the accesses
  assign {b_lsu, b_vrow, b_vwrow} = {lsu_row[DMEM_AW-1-:BK], vmac_row[DMEM_AW-1-:BK],
                                     vmac_wrow[DMEM_AW-1-:BK]};
  assign {b_win, b_win2, b_dma} = {win_row[DMEM_AW-1-:BK], win_row2[DMEM_AW-1-:BK],
                                   dma_row[DMEM_AW-1-:BK]};
  wire one_bank = BANK_BITS == 0;
  always_comb begin
    dma_block = dma_trig && dma_busy;
    if (dma_we && ((lsu_we && (one_bank || b_lsu == b_dma))
        || (vmac_we && (one_bank || b_vwrow == b_dma)))) dma_block = 1'b1;
    if (dma_re && ((lsu_rbits != 0 && (one_bank || b_lsu == b_dma))
        || (vmac_mem_read && (one_bank || b_vrow == b_dma))
        || (win_read && (one_bank || b_win == b_dma || b_win2 == b_dma)))) dma_block = 1'b1;
  end
  always_comb begin
    conflict = 1'b0;
    if (BANK_BITS > 0) begin
      if (lsu_rbits != 0 && vmac_mem_read
          && lsu_row[DMEM_AW-1-:BK] == vmac_row[DMEM_AW-1-:BK]) conflict = 1'b1;
      if (lsu_rbits != 0 && win_read && (lsu_row[DMEM_AW-1-:BK] == win_row[DMEM_AW-1-:BK]
          || lsu_row[DMEM_AW-1-:BK] == win_row2[DMEM_AW-1-:BK])) conflict = 1'b1;
      if (lsu_we && vmac_we && lsu_row[DMEM_AW-1-:BK] == vmac_wrow[DMEM_AW-1-:BK])
        conflict = 1'b1;
    end
  end
  wire stall = run && (dma_block || (conflict && !stalled));
  assign go = run && !stall;
  always_ff @(posedge clk) begin
    if (rst) stalled <= 1'b0;
    else if (run) stalled <= stall;
  end

  tta_mem #(.ROWS(DMEM_ROWS), .WIDTH(W), .AW(DMEM_AW)) u_dmem (
      .clk, .ra(lsu_row), .rda(lsu_rdata), .rb(vmac_row), .rdb(vmac_rdata), .rc(win_row),
      .rdc(win_rdata[W-1:0]), .rd(win_row2), .rdd(win_rdata[2*W-1:W]), .re(dma_row),
      .rde(dma_rdata), .we(go && lsu_we), .wa(lsu_row), .wdata(lsu_wdata), .wmask(lsu_wmask),
      .we2(go && vmac_we), .wa2(vmac_wrow), .wdata2(vmac_wdata), .wmask2(vmac_wmask),
      .we3(dma_we), .wa3(dma_row), .wdata3(dma_wdata), .dbg_we(dbg_we && dbg_space == 2'd1),
      .dbg_row(dbg_index[DMEM_AW-1:0]), .dbg_word, .dbg_wdata, .dbg_rdata(dmem_dbg_rdata));

  // ---- sequential state: pc, register files, data memory, counters, debug writes ----------
  wire dbg_state = dbg_we && dbg_space == 2'd2;

  always_ff @(posedge clk) begin
    if (rst) begin
      pc <= '0;
      halted <= 1'b0;
      bregs <= '0;
      for (int i = 0; i < NR; i++) rf[i] <= '0;
    end else begin
      if (go) begin
        if (ctrl_trig && ctrl_op == OP_CTRL_HALT) halted <= 1'b1;
        else if (ctrl_trig && ctrl_op == OP_CTRL_JUMP) pc <= ctrl_d[IMEM_AW-1:0];
        else pc <= pc + 1'b1;
        for (int b = 0; b < NB; b++) begin
          if (act[b] && 32'(dst[b]) >= D_REG0 && 32'(dst[b]) < D_REG0 + NR)
            rf[32'(dst[b])-D_REG0] <= val[b];
          if (act[b] && 32'(dst[b]) >= D_BOOL0 && 32'(dst[b]) < D_BOOL0 + NBOOL)
            bregs[32'(dst[b])-D_BOOL0] <= val[b][0];
        end
      end
      if (dbg_state && dbg_index < NR) rf[dbg_index] <= dbg_wdata;
      if (dbg_state && dbg_index >= ST_BOOL0 && dbg_index < ST_BOOL0 + NBOOL)
        bregs[dbg_index-ST_BOOL0] <= dbg_wdata[0];
      if (dbg_state && dbg_index == ST_PC) pc <= dbg_wdata[IMEM_AW-1:0];
      if (dbg_state && dbg_index == ST_HALTED) halted <= dbg_wdata[0];
    end
  end

  // Event counters (the energy model's inputs); see hw/isa.py `counter_names`.
  logic [31:0] n_rf_reads, n_rf_writes;
  always_comb begin
    n_rf_reads = '0;
    n_rf_writes = '0;
    for (int b = 0; b < NB; b++) begin
      if (act[b] && is_reg_src[b]) n_rf_reads += 1;
      if (act[b] && 32'(dst[b]) >= D_REG0 && 32'(dst[b]) < D_REG0 + NR) n_rf_writes += 1;
    end
  end

  // The DMA's row traffic is counted in every cycle of a run, the instruction's only when it
  // executes.
  wire [63:0] dma_bits = (dma_re || dma_we) ? 64'(W) : 64'd0;
  always_ff @(posedge clk) begin
    if (rst) begin
      for (int i = 0; i < NCNT; i++) counters[i] <= '0;
    end else if (run) begin
      counters[C_CYCLES] <= counters[C_CYCLES] + 1;
      counters[C_STALL_CYCLES] <= counters[C_STALL_CYCLES] + 64'(stall);
      counters[C_DMA_STALL_CYCLES] <= counters[C_DMA_STALL_CYCLES] + 64'(stall && dma_block);
      counters[C_OFFCHIP_READ_BITS] <= counters[C_OFFCHIP_READ_BITS]
          + (dma_we ? 64'(W) : 64'd0);
      counters[C_OFFCHIP_WRITE_BITS] <= counters[C_OFFCHIP_WRITE_BITS]
          + (dma_re ? 64'(W) : 64'd0);
      counters[C_DMEM_READ_BITS] <= counters[C_DMEM_READ_BITS] + (dma_re ? dma_bits : 64'd0)
          + (go ? 64'(lsu_rbits) + (vmac_mem_read ? 64'(W) : 64'd0)
                  + (win_read ? 64'(W) : 64'd0) : 64'd0);
      counters[C_DMEM_WRITE_BITS] <= counters[C_DMEM_WRITE_BITS] + (dma_we ? dma_bits : 64'd0)
          + (go ? 64'(lsu_wbits) + 64'(vmac_wbits) : 64'd0);
      if (go) begin
        counters[C_RF_READS] <= counters[C_RF_READS] + 64'(n_rf_reads);
        counters[C_RF_WRITES] <= counters[C_RF_WRITES] + 64'(n_rf_writes);
        counters[C_VPP_GROUPS] <= counters[C_VPP_GROUPS] + 64'(vmac_group);
        counters[C_VMAC_MAC8] <= counters[C_VMAC_MAC8] + 64'(vmac_mac8);
        counters[C_VMAC_MAC2] <= counters[C_VMAC_MAC2] + 64'(vmac_mac2);
        counters[C_VMAC_MAC1] <= counters[C_VMAC_MAC1] + 64'(vmac_mac1);
        `TTA_TRIGGER_COUNTERS
        for (int b = 0; b < NB; b++)
          counters[C_MOVES_BUS0+b] <= counters[C_MOVES_BUS0+b] + 64'(act[b]);
      end
    end
  end

  // ---- debug reads ------------------------------------------------------------------------
  always_comb begin
    dbg_rdata = '0;
    case (dbg_space)
      2'd0: dbg_rdata = imem_dbg_rdata;
      2'd1: dbg_rdata = dmem_dbg_rdata;
      2'd2: begin
        if (dbg_index < NR) dbg_rdata = rf[dbg_index];
        else if (dbg_index >= ST_BOOL0 && dbg_index < ST_BOOL0 + NBOOL)
          dbg_rdata = {31'b0, bregs[dbg_index-ST_BOOL0]};
        else if (dbg_index == ST_PC) dbg_rdata = 32'(pc);
        else if (dbg_index == ST_HALTED) dbg_rdata = {31'b0, halted};
        else if (dbg_index >= ST_CNT0 && dbg_index < ST_CNT0 + 2 * NCNT)
          dbg_rdata = dbg_index[0] ? counters[(dbg_index-ST_CNT0)/2][63:32]
                                   : counters[(dbg_index-ST_CNT0)/2][31:0];
      end
      default: ;
    endcase
  end
endmodule
