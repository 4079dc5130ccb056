using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>Appends ONNX nodes and initializers to a graph being translated, with fresh names for the values it adds.</summary>
internal sealed class OnnxGraphBuilder
{
    private int _counter;

    public GraphProto Graph { get; } = new() { Name = "graphdef" };

    /// <summary>A value name no TensorFlow node can have (TensorFlow names never contain '#').</summary>
    public string Fresh(string hint) => $"{hint}#{_counter++}";

    public NodeProto Node(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, string domain = "")
    {
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        Graph.Node.Add(node);
        return node;
    }

    /// <summary>A node with one fresh output, returned.</summary>
    public string Apply(string opType, string name, params string[] inputs)
    {
        string output = Fresh(name + "/" + opType);
        Node(opType, name, inputs, [output]);
        return output;
    }

    public string Initializer(string hint, TensorElementType type, long[] dims, byte[] bytes)
    {
        string name = Fresh(hint);
        AddInitializer(name, type, dims, bytes);
        return name;
    }

    public void AddInitializer(string name, TensorElementType type, long[] dims, byte[] bytes)
    {
        var tensor = new TensorProto { Name = name, DataType = OnnxElementTypes.ToOnnx(type), RawData = UnsafeByteOperations.UnsafeWrap(bytes) };
        tensor.Dims.AddRange(dims);
        Graph.Initializer.Add(tensor);
    }

    public string Int64s(string hint, params long[] values)
    {
        var bytes = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Initializer(hint, TensorElementType.Int64, [values.Length], bytes);
    }

    public string Float(string hint, float value) => Initializer(hint, TensorElementType.Float32, [], BitConverter.GetBytes(value));

    public static void Attribute(NodeProto node, string name, long value) =>
        node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });

    public static void Attribute(NodeProto node, string name, float value) =>
        node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });

    public static void Attribute(NodeProto node, string name, string value) =>
        node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) });

    public static void Attribute(NodeProto node, string name, IEnumerable<long> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        node.Attribute.Add(attribute);
    }
}
