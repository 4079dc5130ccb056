using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Tests.Support;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// The typed storage fields (<c>float_data</c>, <c>int32_data</c>, <c>int64_data</c>, <c>double_data</c>,
/// <c>uint64_data</c>, <c>string_data</c>), which the backend test files rarely use, decoded by us and
/// by ONNX Runtime: a Constant holding edge values of each type, passed through Identity, must come
/// out of ORT as the bytes we decode.
/// </summary>
public class OnnxTypedFieldDecodingTests
{
    public static TheoryData<string> Types() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(Types))]
    public void Onnx_runtime_reads_a_typed_field_as_we_do(string name)
    {
        var tensor = Cases[name]();
        tensor.Name = "value";
        var model = IdentityOfConstant(tensor);

        var ours = model.ReadTensor(tensor);
        using var session = OrtOracle.Session(model.ToByteArray());
        var theirs = OrtOracle.Run(session, [], ["y"])[0];

        Assert.True(TensorComparison.BitwiseEqual(theirs, ours), $"{name}: ORT and we decode the typed field differently");
        Assert.False(tensor.HasRawData);
    }

    private static readonly Dictionary<string, Func<TensorProto>> Cases = new()
    {
        ["float32 in float_data"] = () => Tensor(DataType.Float, t => t.FloatData.Add([0f, -0f, 1.5f, float.NaN, float.PositiveInfinity, float.Epsilon, float.MinValue])),
        ["float64 in double_data"] = () => Tensor(DataType.Double, t => t.DoubleData.Add([0d, -0d, Math.PI, double.NaN, double.NegativeInfinity, double.Epsilon, double.MaxValue])),
        ["int32 in int32_data"] = () => Tensor(DataType.Int32, t => t.Int32Data.Add([0, -1, int.MinValue, int.MaxValue, 12345])),
        ["int16 in int32_data"] = () => Tensor(DataType.Int16, t => t.Int32Data.Add([0, -1, short.MinValue, short.MaxValue, 300])),
        ["uint16 in int32_data"] = () => Tensor(DataType.Uint16, t => t.Int32Data.Add([0, 1, ushort.MaxValue, 0x8000, 300])),
        ["int8 in int32_data"] = () => Tensor(DataType.Int8, t => t.Int32Data.Add([0, -1, sbyte.MinValue, sbyte.MaxValue, 7])),
        ["uint8 in int32_data"] = () => Tensor(DataType.Uint8, t => t.Int32Data.Add([0, 1, 255, 128, 7])),
        ["bool in int32_data"] = () => Tensor(DataType.Bool, t => t.Int32Data.Add([0, 1, 1, 0, 1])),
        // 16-bit floats keep their bit patterns in the low half of each int32.
        ["float16 in int32_data"] = () => Tensor(DataType.Float16, t => t.Int32Data.Add([0x0000, 0x8000, 0x3C00, 0x7C00, 0xFE00, 0x0001, 0x7BFF])),
        ["bfloat16 in int32_data"] = () => Tensor(DataType.Bfloat16, t => t.Int32Data.Add([0x0000, 0x8000, 0x3FC0, 0x7F80, 0x7FC1, 0x0001, 0xFF7F])),
        ["int64 in int64_data"] = () => Tensor(DataType.Int64, t => t.Int64Data.Add([0L, -1L, long.MinValue, long.MaxValue, 1L << 40])),
        ["uint32 in uint64_data"] = () => Tensor(DataType.Uint32, t => t.Uint64Data.Add([0UL, 1UL, uint.MaxValue, 0x80000000UL, 7UL])),
        ["uint64 in uint64_data"] = () => Tensor(DataType.Uint64, t => t.Uint64Data.Add([0UL, 1UL, ulong.MaxValue, 1UL << 63, 7UL])),
        ["string in string_data"] = () => Tensor(DataType.String, t => t.StringData.Add(
            [ByteString.Empty, ByteString.CopyFromUtf8("plain"), ByteString.CopyFromUtf8("Zürich €"), ByteString.CopyFromUtf8("tab\tand\nnewline")])),
        ["float32 [2, 3] in float_data"] = () => Tensor(DataType.Float, t => t.FloatData.Add([1f, 2f, 3f, 4f, 5f, 6f]), [2, 3]),
        ["float32 scalar in float_data"] = () => Tensor(DataType.Float, t => t.FloatData.Add(42f), []),
        ["int64 [0] empty"] = () => Tensor(DataType.Int64, _ => { }, [0]),
    };

    /// <summary>A tensor of <paramref name="type"/> filled by <paramref name="fill"/>; one dimension holding every value unless a shape is given.</summary>
    private static TensorProto Tensor(DataType type, Action<TensorProto> fill, long[]? shape = null)
    {
        var tensor = new TensorProto { DataType = (int)type };
        fill(tensor);
        long count = Math.Max(Math.Max(tensor.FloatData.Count, tensor.DoubleData.Count), Math.Max(Math.Max(tensor.Int32Data.Count, tensor.Int64Data.Count),
            Math.Max(tensor.Uint64Data.Count, tensor.StringData.Count)));
        tensor.Dims.Add(shape ?? [count]);
        return tensor;
    }

    /// <summary>y = Identity(Constant(value)), opset 17.</summary>
    private static OnnxModel IdentityOfConstant(TensorProto value)
    {
        var outputType = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = value.DataType } };
        var proto = new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } },
            Graph = new GraphProto
            {
                Name = "typed",
                Node =
                {
                    new NodeProto
                    {
                        OpType = "Constant",
                        Output = { "c" },
                        Attribute = { new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = value } },
                    },
                    new NodeProto { OpType = "Identity", Input = { "c" }, Output = { "y" } },
                },
                Output = { new ValueInfoProto { Name = "y", Type = outputType } },
            },
        };
        return OnnxModel.Load(proto.ToByteArray(), "typed.onnx");
    }
}
