// Accumulator lanes of one slice of the vector unit (tta_vmac.sv): lane l adds or sets the term
// its inputs name.
// Every read of an accumulator register goes through ACC: in fault-injection builds the
// stuck-at bits of lane fault_lane are forced on each read (so on each accumulation too).
`ifdef TTA_FAULT_PORT
`define ACC(i) ((first + 32'(i) == fault_lane) ? ((acc_r[i] & fault_and) | fault_or) : acc_r[i])
`else
`define ACC(i) acc_r[i]
`endif
module tta_vmac_slice #(
    parameter int S = 32
) (
    input  logic            clk,
    input  logic            rst,
    input  logic            en,
    input  logic [S-1:0]    we,  // lanes written this cycle
    input  logic            t_p8,  // the term: the group's 8-bit product (mac, emac)
    input  logic            t_terx,  // x times the weight code (tmac)
    input  logic            t_ter1,  // window code times weight code (etmac)
    input  logic            t_binx,  // +x / -x by the weight bit (bmac)
    input  logic            t_bin1,  // +1 / -1 where window and weight bits agree (ebmac)
    input  logic            t_dot,  // the dot lane's sum
    input  logic            t_prod,  // the row's byte times prm (radd); else the byte itself
    input  logic            rset,  // acc = term (aset)
    input  logic            rmax,  // acc = max(acc, term) (amax)
    input  logic            start,  // acc = term: a new sum
    input  logic [7:0]      x8,  // the broadcast operand
    input  logic [S*16-1:0] p8,
    input  logic [S*32-1:0] dot,
    input  logic [S*32-1:0] prod,
    input  logic [S*8-1:0]  xj,
    input  logic [S*2-1:0]  wcode,
    input  logic [S*2-1:0]  rcode,
    input  logic [S-1:0]    wbit,
    input  logic [S-1:0]    rbit,
    output logic [S*32-1:0] acc  // as read
`ifdef TTA_FAULT_PORT
    ,
    input  logic [31:0]     first,  // lane 0's accumulator index
    input  logic [31:0]     fault_lane,
    input  logic [31:0]     fault_and,
    input  logic [31:0]     fault_or
`endif
);
  logic [31:0] acc_r[S];
  for (genvar l = 0; l < S; l++) begin : g_read
    assign acc[32*l+:32] = `ACC(l);
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      for (int l = 0; l < S; l++) acc_r[l] <= '0;
    end else if (en && |we) begin  // terms formed only where written (cheap to simulate)
      for (int l = 0; l < S; l++)
        if (we[l]) begin
          logic signed [31:0] a, t, x;
          a = `ACC(l);
          x = 32'($signed(x8));
          if (t_p8) t = 32'($signed(p8[16*l+:16]));
          else if (t_terx) t = !wcode[2*l] ? 32'd0 : wcode[2*l+1] ? -x : x;
          else if (t_ter1)
            t = !(rcode[2*l] && wcode[2*l]) ? 32'd0
                : rcode[2*l+1] ^ wcode[2*l+1] ? -32'sd1 : 32'sd1;
          else if (t_binx) t = wbit[l] ? x : -x;
          else if (t_bin1) t = rbit[l] == wbit[l] ? 32'sd1 : -32'sd1;
          else if (t_dot) t = dot[32*l+:32];
          else if (t_prod) t = prod[32*l+:32];
          else t = 32'($signed(xj[8*l+:8]));
          acc_r[l] <= rset ? t : rmax ? (t > a ? t : a) : (start ? 32'sd0 : a) + t;
        end
    end
  end
endmodule
`undef ACC
