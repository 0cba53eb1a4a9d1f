// One lookup lane of lut: byte `index` of the 256-entry table (identical instances, W/32 of
// them: Yosys synthesizes one and counts each).
module tta_vmac_lut (
    input  logic [2047:0] table_bits,  // entry e is bits [8e, 8e + 8)
    input  logic [7:0]    index,
    output logic [7:0]    value
);
  assign value = table_bits[8*index+:8];
endmodule
