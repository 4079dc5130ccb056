using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using OrtSessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>Small ONNX graphs for quantizer tests, and the two runtimes that check them.</summary>
internal static class TestGraphs
{
    public static ModelProto Model(GraphProto graph, long opset = 17)
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "test", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    public static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params (string Name, long Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (key, value) in attributes)
            node.Attribute.Add(new AttributeProto { Name = key, Type = AttributeProto.Types.AttributeType.Int, I = value });
        return node;
    }

    public static NodeProto Ints(this NodeProto node, string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        node.Attribute.Add(attribute);
        return node;
    }

    public static ValueInfoProto Value(string name, int elementType, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elementType, Shape = shape } } };
    }

    public static ValueInfoProto Floats(string name, params long[] dims) => Value(name, 1, dims);

    public static TensorProto FloatTensor(string name, long[] dims, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }

    public static TensorProto Int64Tensor(string name, long[] dims, long[] values)
    {
        var t = new TensorProto { Name = name, DataType = 7 };
        t.Dims.AddRange(dims);
        t.Int64Data.AddRange(values);
        return t;
    }

    public static float[] Random(Random random, int count, float scale = 1) =>
        Enumerable.Range(0, count).Select(_ => (random.NextSingle() * 2 - 1) * scale).ToArray();

    /// <summary>Runs a model in ONNX Runtime on float inputs; returns the first output.</summary>
    public static float[] RunOrt(byte[] model, params (string Name, float[] Values, long[] Shape)[] inputs)
    {
        using var options = new OrtSessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        var values = inputs.Select(i => OrtValue.CreateTensorValueFromMemory(i.Values, i.Shape)).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, [session.OutputNames[0]]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Runs a model in our runtime on float inputs; returns the first output.</summary>
    public static float[] RunOurs(byte[] model, params (string Name, float[] Values, long[] Shape)[] inputs)
    {
        using var session = ModelSession.Load(model, "model.onnx", new SessionOptions { Threads = 1 });
        var feeds = inputs.ToDictionary(i => i.Name, i => Tensor.Create(i.Values, i.Shape.Select(d => (int)d).ToArray()));
        return session.Run(feeds)[session.Outputs[0].Name].ToArray<float>();
    }

    public static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double bound = tolerance * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= bound, $"{what}[{i}]: {expected[i]} vs {actual[i]}");
        }
    }

    public static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
