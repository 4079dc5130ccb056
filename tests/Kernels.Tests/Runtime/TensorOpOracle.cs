using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Kernels.Tests.Support;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// Runs one ONNX node on our runtime and on ONNX Runtime and checks they agree. Our side runs three
/// ways: every input fed at run time, every input but the first an initializer (read at load), and
/// every input an initializer (the node folded at load).
/// </summary>
internal static class TensorOpOracle
{
    public static void Check(string op, int opset, Tensor[] inputs, TensorElementType[] outputTypes,
        Action<NodeProto>? attributes = null, double rtol = 0, double atol = 0)
    {
        var expected = RunOrt(Build(op, opset, inputs, outputTypes, attributes, constantFrom: inputs.Length), inputs);
        foreach (int constantFrom in new[] { inputs.Length, Math.Min(1, inputs.Length), 0 }.Distinct())
        {
            var model = Build(op, opset, inputs, outputTypes, attributes, constantFrom);
            using var session = ModelSession.Create(OnnxModel.Load(model, $"{op}.onnx"), new SessionOptions { Threads = 1 });
            var feeds = new Dictionary<string, Tensor>();
            for (int i = 0; i < constantFrom; i++) feeds[$"x{i}"] = inputs[i];
            var outputs = session.Run(feeds);
            for (int o = 0; o < outputTypes.Length; o++)
            {
                var actual = Data(outputs[$"y{o}"]);
                string? problem = TensorComparison.Difference(expected[o], actual, rtol, atol);
                if (problem is not null && actual.ElementType == TensorElementType.String)
                    problem += $": [{Strings(actual)}], expected [{Strings(expected[o])}]";
                Assert.True(problem is null, $"{op} (opset {opset}, inputs from {constantFrom} constant), output {o}: {problem}");
            }
        }
    }

    private static string Strings(TensorData data) => string.Join(", ", data.Strings.Select(Encoding.UTF8.GetString));

    /// <summary>Our outputs, every input fed at run time.</summary>
    public static Tensor[] Ours(string op, int opset, Tensor[] inputs, TensorElementType[] outputTypes, Action<NodeProto>? attributes = null)
    {
        var model = Build(op, opset, inputs, outputTypes, attributes, inputs.Length);
        using var session = ModelSession.Create(OnnxModel.Load(model, $"{op}.onnx"), new SessionOptions { Threads = 1 });
        var outputs = session.Run(inputs.Select((t, i) => ($"x{i}", t)).ToDictionary(p => p.Item1, p => p.t));
        return outputTypes.Select((_, o) => outputs[$"y{o}"]).ToArray();
    }

    private static byte[] Build(string op, int opset, Tensor[] inputs, TensorElementType[] outputTypes, Action<NodeProto>? attributes, int constantFrom)
    {
        var node = new NodeProto { OpType = op };
        var graph = new GraphProto { Name = op };
        for (int i = 0; i < inputs.Length; i++)
        {
            node.Input.Add($"x{i}");
            if (i < constantFrom)
                graph.Input.Add(new ValueInfoProto { Name = $"x{i}", Type = TypeOf(inputs[i].ElementType, inputs[i].ShapeArray) });
            else
                graph.Initializer.Add(Proto($"x{i}", inputs[i]));
        }
        for (int o = 0; o < outputTypes.Length; o++)
        {
            node.Output.Add($"y{o}");
            graph.Output.Add(new ValueInfoProto { Name = $"y{o}", Type = TypeOf(outputTypes[o], null) });
        }
        attributes?.Invoke(node);
        graph.Node.Add(node);
        return new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = opset } },
            Graph = graph,
        }.ToByteArray();
    }

    private static TensorData[] RunOrt(byte[] model, Tensor[] inputs)
    {
        using var session = OrtOracle.Session(model);
        var feeds = inputs.Select((t, i) => ($"x{i}", Data(t))).ToList();
        return OrtOracle.Run(session, feeds, session.OutputMetadata.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList());
    }

    private static TypeProto TypeOf(TensorElementType type, int[]? shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = OnnxElementTypes.ToOnnx(type) };
        if (shape is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (int d in shape) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new TypeProto { TensorType = tensor };
    }

    private static TensorProto Proto(string name, Tensor tensor)
    {
        var proto = new TensorProto { Name = name, DataType = OnnxElementTypes.ToOnnx(tensor.ElementType) };
        foreach (int d in tensor.Shape) proto.Dims.Add(d);
        var data = Data(tensor);
        if (tensor.ElementType == TensorElementType.String)
            foreach (var s in data.Strings) proto.StringData.Add(ByteString.CopyFrom(s));
        else
            proto.RawData = ByteString.CopyFrom(data.Bytes);
        return proto;
    }

    /// <summary>Our tensor as <see cref="TensorData"/> (bytes or UTF-8 strings).</summary>
    public static TensorData Data(Tensor tensor)
    {
        long[] shape = tensor.Shape.ToArray().Select(d => (long)d).ToArray();
        var array = tensor.Buffer.Data;
        if (tensor.ElementType == TensorElementType.String)
            return TensorData.FromStrings(shape, tensor.AsSpan<string>().ToArray().Select(Encoding.UTF8.GetBytes).ToArray());
        int bytes = (int)tensor.ElementType.ByteCount(tensor.Length);
        var raw = MemoryMarshal.CreateReadOnlySpan(ref MemoryMarshal.GetArrayDataReference(array), bytes).ToArray();
        return new TensorData(tensor.ElementType, shape, raw);
    }

    /// <summary>A tensor of <paramref name="type"/> with distinct, reproducible values.</summary>
    public static Tensor Random(TensorElementType type, Random random, params int[] shape)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        return type switch
        {
            TensorElementType.Float32 => Tensor.Create(Enumerable.Range(0, n).Select(_ => (float)random.NextDouble() * 10 - 5).ToArray(), shape),
            TensorElementType.Float64 => Tensor.Create(Enumerable.Range(0, n).Select(_ => random.NextDouble() * 10 - 5).ToArray(), shape),
            TensorElementType.Float16 => Tensor.Create(Enumerable.Range(0, n).Select(_ => (Half)(random.NextDouble() * 10 - 5)).ToArray(), shape),
            TensorElementType.Int8 => Tensor.Create(Enumerable.Range(0, n).Select(_ => (sbyte)random.Next(-128, 128)).ToArray(), shape),
            TensorElementType.UInt8 => Tensor.Create(Enumerable.Range(0, n).Select(_ => (byte)random.Next(256)).ToArray(), shape),
            TensorElementType.Int16 => Tensor.Create(Enumerable.Range(0, n).Select(_ => (short)random.Next(-30000, 30000)).ToArray(), shape),
            TensorElementType.Int32 => Tensor.Create(Enumerable.Range(0, n).Select(_ => random.Next()).ToArray(), shape),
            TensorElementType.Int64 => Tensor.Create(Enumerable.Range(0, n).Select(_ => random.NextInt64()).ToArray(), shape),
            TensorElementType.Bool => Tensor.Create(Enumerable.Range(0, n).Select(_ => random.Next(2) == 1).ToArray(), shape),
            TensorElementType.String => Tensor.Create(Enumerable.Range(0, n).Select(_ => $"s{random.Next(1000)}é").ToArray(), shape),
            _ => throw new ArgumentException($"no random {type}"),
        };
    }

    /// <summary>The same elements under another shape (default: a scalar).</summary>
    public static Tensor Reshaped(Tensor tensor, params int[] shape) => new(tensor.ElementType, shape, new TensorBuffer(tensor.Buffer.Data, pooled: false));

    public static Tensor Longs(params long[] values) => Tensor.Create(values, values.Length);

    public static Tensor Scalar<T>(T value) => Tensor.Create(new[] { value });

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Str(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
}
