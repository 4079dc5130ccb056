using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// Builds small QDQ models in tests, the way ONNX Runtime's quantize_static writes them: QuantizeLinear/DequantizeLinear
/// pairs on activations, constant 8-bit weights and int32 biases behind DequantizeLinear.
/// </summary>
internal sealed class QdqModelBuilder
{
    private readonly GraphProto _graph = new() { Name = "qdq" };
    private int _counter;

    public string Unique(string stem) => $"{stem}_{_counter++}";

    public void Input(string name, DataType type, params long[] dims) => _graph.Input.Add(Value(name, type, dims));

    public void Output(string name, DataType type) => _graph.Output.Add(Value(name, type, null));

    public string Initializer(string name, DataType type, long[] dims, byte[] raw)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        tensor.Dims.AddRange(dims);
        _graph.Initializer.Add(tensor);
        return name;
    }

    public string Floats(string stem, long[] dims, float[] values) => Initializer(Unique(stem), DataType.Float, dims, Raw(values));

    public string Scalar(string stem, float value) => Floats(stem, [], [value]);

    public string Int32s(string stem, long[] dims, int[] values) => Initializer(Unique(stem), DataType.Int32, dims, Raw(values));

    /// <summary>8-bit values (int8 when <paramref name="signed"/>) given as ints.</summary>
    public string Bytes(string stem, long[] dims, int[] values, bool signed) =>
        Initializer(Unique(stem), signed ? DataType.Int8 : DataType.Uint8, dims, values.Select(v => (byte)v).ToArray());

    public string ZeroPoint(string stem, int value, bool signed) => Bytes(stem, [], [value], signed);

    public NodeProto Node(string opType, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Unique(opType.ToLowerInvariant()) };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return node;
    }

    /// <summary>QuantizeLinear then DequantizeLinear of an activation; returns (quantized, dequantized) names.</summary>
    public (string Quantized, string Dequantized) QuantizeDequantize(string x, float scale, int zeroPoint, bool signed)
    {
        string s = Scalar("scale", scale), z = ZeroPoint("zp", zeroPoint, signed);
        string q = Unique(x + "_q"), dq = Unique(x + "_dq");
        Node("QuantizeLinear", [x, s, z], q);
        Node("DequantizeLinear", [q, s, z], dq);
        return (q, dq);
    }

    /// <summary>DequantizeLinear of constant 8-bit weights with per-tensor or per-axis scales; returns its output.</summary>
    public string Weights(long[] dims, int[] values, float[] scales, int[]? zeroPoints, bool signed, int axis)
    {
        string w = Bytes("w", dims, values, signed);
        long[] parameterDims = scales.Length == 1 ? [] : [scales.Length];
        string s = Floats("w_scale", parameterDims, scales);
        var inputs = new List<string> { w, s };
        if (zeroPoints is not null) inputs.Add(Bytes("w_zp", parameterDims, zeroPoints, signed));
        string output = Unique("w_dq");
        Node("DequantizeLinear", inputs.ToArray(), output, Int("axis", axis));
        return output;
    }

    /// <summary>DequantizeLinear of a constant int32 bias (scale x_scale x w_scale, zero point 0 when given).</summary>
    public string Int32Bias(int[] values, float[] scales, bool withZeroPoint)
    {
        string b = Int32s("bias", [values.Length], values);
        long[] parameterDims = scales.Length == 1 ? [] : [scales.Length];
        var inputs = new List<string> { b, Floats("bias_scale", parameterDims, scales) };
        if (withZeroPoint) inputs.Add(Int32s("bias_zp", parameterDims, new int[scales.Length]));
        string output = Unique("bias_dq");
        Node("DequantizeLinear", inputs.ToArray(), output, Int("axis", 0));
        return output;
    }

    public byte[] Build(int opset = 13)
    {
        var model = new ModelProto { IrVersion = 8, Graph = _graph, ProducerName = "Quantize.Kernels.Tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model.ToByteArray();
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static byte[] Raw<T>(T[] values) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static ValueInfoProto Value(string name, DataType type, long[]? dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (long d in dims) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}
