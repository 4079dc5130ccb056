using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Build.Tasks.Tests;

/// <summary>Small float ONNX models made here (deterministic), so the tests need nothing downloaded.</summary>
internal static class TestModels
{
    /// <summary>
    /// x[1,64] -> MatMul(64xH) -> Add -> Relu -> MatMul(Hx10) -> y[1,10], H = <paramref name="hidden"/>. With the default
    /// H = 96 the weights have 6144 and 960 elements: the second stays float under the default minimum size of 1024.
    /// </summary>
    public static byte[] Mlp(int seed = 7, int hidden = 96)
    {
        var random = new Random(seed);
        var graph = new GraphProto { Name = "mlp" };
        graph.Input.Add(Value("x", 1, 64));
        graph.Output.Add(Value("y", 1, 10));
        graph.Initializer.Add(Weights("w1", random, 64, hidden));
        graph.Initializer.Add(Weights("b1", random, hidden));
        graph.Initializer.Add(Weights("w2", random, hidden, 10));
        graph.Node.Add(Node("MatMul", "mm1", ["x", "w1"], "h0"));
        graph.Node.Add(Node("Add", "add1", ["h0", "b1"], "h1"));
        graph.Node.Add(Node("Relu", "relu1", ["h1"], "h2"));
        graph.Node.Add(Node("MatMul", "mm2", ["h2", "w2"], "y"));
        var model = new ModelProto { IrVersion = 8, ProducerName = "Quantize.Build.Tasks.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }

    /// <summary>One calibration sample folder holding <c>x.pb</c> (a TensorProto [1,64]).</summary>
    public static void WriteSample(string folder, int seed)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(seed);
        var tensor = new TensorProto { Name = "x", DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.Add([1, 64]);
        tensor.FloatData.Add(Enumerable.Range(0, 64).Select(_ => random.NextSingle() * 2 - 1));
        File.WriteAllBytes(Path.Combine(folder, "x.pb"), tensor.ToByteArray());
    }

    private static ValueInfoProto Value(string name, params long[] shape)
    {
        var type = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto() };
        foreach (long d in shape) type.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = type } };
    }

    private static TensorProto Weights(string name, Random random, params long[] shape)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.Add(shape);
        long count = shape.Aggregate(1L, (a, b) => a * b);
        tensor.FloatData.Add(Enumerable.Range(0, (int)count).Select(_ => (random.NextSingle() * 2 - 1) * 0.2f));
        return tensor;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string output)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.Add(inputs);
        node.Output.Add(output);
        return node;
    }
}
