using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Benchmarks;

/// <summary>Single-op ONNX models built with our own writer, run by ONNX Runtime as the comparison.</summary>
public static class OrtModels
{
    /// <summary>Y = A x B with B a float initializer.</summary>
    public static byte[] MatMul(int m, int k, int n, float[] b) => Model(
        "MatMul",
        [Input("A", TensorProto.Types.DataType.Float, m, k)],
        [Tensor("B", TensorProto.Types.DataType.Float, [k, n], ToBytes(b))],
        ["A", "B"],
        Output("Y", TensorProto.Types.DataType.Float, m, n));

    /// <summary>Y = (A - zpA) x (B - 0) as int32 with A uint8 and B an int8 initializer (ONNX Runtime's u8s8 path).</summary>
    public static byte[] MatMulInteger(int m, int k, int n, sbyte[] b, byte zeroPointA) => Model(
        "MatMulInteger",
        [Input("A", TensorProto.Types.DataType.Uint8, m, k)],
        [
            Tensor("B", TensorProto.Types.DataType.Int8, [k, n], (byte[])(Array)b),
            Tensor("a_zero_point", TensorProto.Types.DataType.Uint8, [], [zeroPointA]),
            Tensor("b_zero_point", TensorProto.Types.DataType.Int8, [], [0]),
        ],
        ["A", "B", "a_zero_point", "b_zero_point"],
        Output("Y", TensorProto.Types.DataType.Int32, m, n));

    /// <summary>A session on one model with a fixed number of intra-op threads.</summary>
    public static InferenceSession Session(byte[] model, int threads)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        return new InferenceSession(model, options);
    }

    private static byte[] Model(string op, ValueInfoProto[] inputs, TensorProto[] initializers, string[] nodeInputs, ValueInfoProto output)
    {
        var node = new NodeProto { OpType = op, Name = op };
        node.Input.AddRange(nodeInputs);
        node.Output.Add(output.Name);
        var graph = new GraphProto { Name = op };
        graph.Node.Add(node);
        graph.Input.AddRange(inputs);
        graph.Initializer.AddRange(initializers);
        graph.Output.Add(output);
        var model = new ModelProto { IrVersion = 8, ProducerName = "Quantize.Benchmarks", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }

    private static ValueInfoProto Input(string name, TensorProto.Types.DataType type, params long[] dims) => Output(name, type, dims);

    private static ValueInfoProto Output(string name, TensorProto.Types.DataType type, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    private static TensorProto Tensor(string name, TensorProto.Types.DataType type, long[] dims, byte[] raw)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static byte[] ToBytes(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
