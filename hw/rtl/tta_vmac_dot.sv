// One dot-product lane: its 32-bit weight slice times one 32-bit word of the window.
module tta_vmac_dot (
    input  logic        on8,
    input  logic        on2,
    input  logic        on1,
    input  logic [31:0] a,
    input  logic [31:0] w,
    output logic [31:0] sum
);
  logic signed [31:0] s;
  always_comb begin
    s = '0;  // computed only on a dot trigger (cheap to simulate)
    if (on8)
      for (int k = 0; k < 4; k++)
        s += 32'(16'($signed(a[8*k+:8])) * 16'($signed(w[8*k+:8])));
    else if (on2)
      for (int k = 0; k < 16; k++)  // code: bit 0 = nonzero, bit 1 = negative
        s += !(a[2*k] && w[2*k]) ? 32'd0 : a[2*k+1] ^ w[2*k+1] ? -32'sd1 : 32'sd1;
    else if (on1)
      s = 32'($countones(~(a ^ w))) * 2 - 32;
    sum = s;
  end
endmodule
