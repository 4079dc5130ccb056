using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>Small constructors for the nodes and initializers the quantizer writes.</summary>
internal static class OnnxBuild
{
    public static NodeProto Node(string op, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, string domain = "")
    {
        var node = new NodeProto { OpType = op, Name = name, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    public static NodeProto With(this NodeProto node, string attribute, long value)
    {
        node.Attribute.Add(new AttributeProto { Name = attribute, Type = AttributeProto.Types.AttributeType.Int, I = value });
        return node;
    }

    public static TensorProto Tensor(string name, TensorProto.Types.DataType type, ReadOnlySpan<long> dims, ReadOnlySpan<byte> raw)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        foreach (long d in dims) tensor.Dims.Add(d);
        return tensor;
    }

    public static TensorProto Floats(string name, ReadOnlySpan<long> dims, ReadOnlySpan<float> values) =>
        Tensor(name, TensorProto.Types.DataType.Float, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    public static TensorProto Int32s(string name, ReadOnlySpan<long> dims, ReadOnlySpan<int> values) =>
        Tensor(name, TensorProto.Types.DataType.Int32, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    /// <summary>The version of the default ONNX domain the model imports (1 if none).</summary>
    public static long DefaultOpset(ModelProto model) =>
        model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;

    /// <summary>Makes sure the model imports <paramref name="domain"/> (at <paramref name="version"/> if it is added).</summary>
    public static void EnsureOpset(ModelProto model, string domain, long version)
    {
        if (!model.OpsetImport.Any(o => o.Domain == domain))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
    }
}
