using System.Runtime.InteropServices;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Quantization;

/// <summary>
/// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear are bit-exact with the ONNX node tests
/// (inputs and expected outputs computed by ONNX's reference), for int8/uint8/int16/uint16/int4/uint4.
/// </summary>
public class QuantizeLinearNodeTests
{
    /// <summary>The node tests of these ops whose quantized type is one we implement; float8, float4 and 2-bit cases are out of scope.</summary>
    public static TheoryData<string> Cases() => new(
        "test_quantizelinear", "test_quantizelinear_axis", "test_quantizelinear_blocked_asymmetric",
        "test_quantizelinear_blocked_symmetric", "test_quantizelinear_int16", "test_quantizelinear_uint16",
        "test_quantizelinear_int4", "test_quantizelinear_uint4",
        "test_dequantizelinear", "test_dequantizelinear_axis", "test_dequantizelinear_blocked",
        "test_dequantizelinear_int16", "test_dequantizelinear_uint16", "test_dequantizelinear_int4", "test_dequantizelinear_uint4",
        "test_dynamicquantizelinear", "test_dynamicquantizelinear_max_adjusted", "test_dynamicquantizelinear_min_adjusted");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_the_onnx_reference_bit_for_bit(string name)
    {
        string folder = SharedData.Require(Path.Combine("onnx-node-tests", name));
        var model = OnnxModel.Load(Path.Combine(folder, "model.onnx"));
        var node = Assert.Single(model.Graph.Node);
        var inputs = ReadAll(model, folder, "input", node.Input.Count(i => i.Length > 0));
        var expected = ReadAll(model, folder, "output", node.Output.Count);

        switch (node.OpType)
        {
            case "QuantizeLinear":
            {
                var x = inputs[0].ToArray<float>();
                var scales = inputs[1].ToArray<float>();
                int[] zeroPoints = inputs.Count > 2 ? ZeroPoints(inputs[2]) : [];
                var type = inputs.Count > 2 ? inputs[2].ElementType
                    : Attribute(node, "output_dtype") is long dt && dt != 0 ? OnnxElementTypes.ToElementType((int)dt) : TensorElementType.UInt8;
                byte[] actual = LinearQuantization.Quantize(x, inputs[0].Shape, scales, zeroPoints,
                    (int)(Attribute(node, "axis") ?? 1), (int)(Attribute(node, "block_size") ?? 0), type);
                Assert.Equal(expected[0].ElementType, type);
                Assert.Equal(expected[0].Bytes.ToArray(), actual);
                break;
            }
            case "DequantizeLinear":
            {
                var scales = inputs[1].ToArray<float>();
                int[] zeroPoints = inputs.Count > 2 ? ZeroPoints(inputs[2]) : [];
                float[] actual = LinearQuantization.Dequantize(inputs[0].Bytes, inputs[0].ElementType, inputs[0].Shape, scales, zeroPoints,
                    (int)(Attribute(node, "axis") ?? 1), (int)(Attribute(node, "block_size") ?? 0));
                Assert.Equal(BitsOf(expected[0].ToArray<float>()), BitsOf(actual));
                break;
            }
            case "DynamicQuantizeLinear":
            {
                var x = inputs[0].ToArray<float>();
                var y = new byte[x.Length];
                var parameters = DynamicQuantizeLinear.Quantize(x, y);
                Assert.Equal(expected[0].Bytes.ToArray(), y);
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[1].ToArray<float>()[0]), BitConverter.SingleToInt32Bits(parameters.Scale));
                Assert.Equal(expected[2].Bytes[0], parameters.ZeroPoint);
                break;
            }
            default:
                Assert.Fail($"unexpected op {node.OpType}");
                break;
        }
    }

    private static List<TensorData> ReadAll(OnnxModel model, string folder, string prefix, int count) =>
        Enumerable.Range(0, count)
            .Select(i => model.ReadTensor(TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(folder, "test_data_set_0", $"{prefix}_{i}.pb")))))
            .ToList();

    private static long? Attribute(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I;

    /// <summary>Zero points widened to int, unpacking 4-bit storage.</summary>
    private static int[] ZeroPoints(TensorData zp)
    {
        int n = (int)zp.ElementCount;
        switch (zp.ElementType)
        {
            case TensorElementType.Int8: return zp.AsSpan<sbyte>().ToArray().Select(v => (int)v).ToArray();
            case TensorElementType.UInt8: return zp.Bytes.ToArray().Select(v => (int)v).ToArray();
            case TensorElementType.Int16: return zp.AsSpan<short>().ToArray().Select(v => (int)v).ToArray();
            case TensorElementType.UInt16: return zp.AsSpan<ushort>().ToArray().Select(v => (int)v).ToArray();
            case TensorElementType.Int4:
            {
                var values = new sbyte[n];
                Int4Packing.Unpack(zp.Bytes, values);
                return values.Select(v => (int)v).ToArray();
            }
            case TensorElementType.UInt4:
            {
                var values = new byte[n];
                Int4Packing.Unpack(zp.Bytes, values);
                return values.Select(v => (int)v).ToArray();
            }
            default: throw new InvalidOperationException($"zero point type {zp.ElementType}");
        }
    }

    private static int[] BitsOf(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();
}
