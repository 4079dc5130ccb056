using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>Fused plans compute what ONNX Runtime computes for the unfused graph.</summary>
public class FusionTests
{
    [Fact]
    public void MatMul_plus_bias_is_fused_and_matches_onnx_runtime()
    {
        var random = new Random(2);
        int m = 5, k = 70, n = 33;
        float[] w = Enumerable.Range(0, k * n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        float[] x = Enumerable.Range(0, 2 * m * k).Select(_ => random.NextSingle() - 0.5f).ToArray();
        byte[] model = MatMulAddModel(k, n, w, bias).ToByteArray();

        using var ours = ModelSession.Load(model, "matmul_add.onnx", new SessionOptions { Threads = 1 });
        Assert.Contains(ours.PlannedNodes, label => label.Contains("(MatMulAdd)", StringComparison.Ordinal));
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, 2, m, k) })["Y"].ToArray<float>();

        float[] expected = OnnxRuntimeY(model, ("X", x, [2, m, k]));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {mine[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData(1.4142135f, false, true)]  // BERT's gelu as PyTorch exports it: fused
    [InlineData(1.4142135f, true, true)]   // x * 0.5 taken first: fused
    [InlineData(2f, false, false)]         // not GELU (divides by 2): left alone, still right
    public void Layer_norm_and_gelu_written_out_are_fused_and_match_onnx_runtime(float divisor, bool halfFirst, bool fused)
    {
        var random = new Random(3);
        int rows = 7, width = 40;
        float[] gamma = Enumerable.Range(0, width).Select(_ => random.NextSingle() + 0.5f).ToArray();
        float[] beta = Enumerable.Range(0, width).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] x = Enumerable.Range(0, 2 * rows * width).Select(_ => (random.NextSingle() - 0.5f) * 6).ToArray();
        byte[] model = LayerNormGeluModel(width, gamma, beta, divisor, halfFirst).ToByteArray();

        using var ours = ModelSession.Load(model, "ln_gelu.onnx", new SessionOptions { Threads = 2 });
        Assert.Contains(ours.PlannedNodes, label => label.EndsWith("(LayerNormalization)", StringComparison.Ordinal));
        Assert.DoesNotContain(ours.PlannedNodes, label => label.EndsWith("(ReduceMean)", StringComparison.Ordinal));
        Assert.Equal(fused, ours.PlannedNodes.Any(label => label.EndsWith("(Gelu)", StringComparison.Ordinal)));
        Assert.Equal(!fused, ours.PlannedNodes.Any(label => label.EndsWith("(Erf)", StringComparison.Ordinal)));
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, 2, rows, width) })["Y"].ToArray<float>();

        float[] expected = OnnxRuntimeY(model, ("X", x, [2, rows, width]));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {mine[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData("Div", new[] { 2, 1, 1, 7 }, 7, 20f)]
    [InlineData("Mul", new[] { 1, 1, 1, 7 }, 7, 20f)]
    [InlineData("Div", new[] { 2, 3, 5, 1 }, 7, 20f)]     // one mask value per row
    [InlineData("Div", new[] { 1, 1, 1, 19 }, 19, 4000f)] // rows of two vectors and a tail, scores far apart: the row maximum must be exact
    public void Scaled_masked_softmax_is_fused_and_matches_onnx_runtime(string scaleOp, int[] maskShape, int width, float spread)
    {
        var random = new Random(5);
        int[] shape = [2, 3, 5, width];
        float[] scores = Enumerable.Range(0, 2 * 3 * 5 * width).Select(_ => (random.NextSingle() - 0.5f) * spread).ToArray();
        float[] mask = Enumerable.Range(0, maskShape.Aggregate(1, (a, b) => a * b)).Select(_ => random.Next(3) == 0 ? -10000f : 0f).ToArray();
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("S", shape.Select(d => (long)d).ToArray()));
        graph.Input.Add(Value("M", maskShape.Select(d => (long)d).ToArray()));
        graph.Output.Add(Value("Y", shape.Select(d => (long)d).ToArray()));
        graph.Initializer.Add(Floats("c", [], [scaleOp == "Div" ? 8f : 0.125f]));
        var scale = new NodeProto { OpType = scaleOp, Name = "scale", Input = { "S", "c" }, Output = { "scaled" } };
        var add = new NodeProto { OpType = "Add", Name = "mask", Input = { "scaled", "M" }, Output = { "masked" } };
        var softmax = new NodeProto { OpType = "Softmax", Name = "softmax", Input = { "masked" }, Output = { "Y" } };
        softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
        graph.Node.AddRange([scale, add, softmax]);
        var proto = new ModelProto { IrVersion = 8, Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 11 });
        byte[] model = proto.ToByteArray();

        using var ours = ModelSession.Load(model, "attention.onnx", new SessionOptions { Threads = 2 });
        Assert.Equal(["'softmax' (MaskedSoftmax)"], ours.PlannedNodes);
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["S"] = Tensor.Create(scores, shape), ["M"] = Tensor.Create(mask, maskShape) })["Y"].ToArray<float>();

        float[] expected = OnnxRuntimeY(model, ("S", scores, shape), ("M", mask, maskShape));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-6 + 1e-5 * Math.Abs(expected[i]), $"{i}: {mine[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData(new[] { 1, 3, 9, 11 }, new[] { 8, 3, 3, 3 }, 1)]  // patches by pixels (the constant-weight path)
    [InlineData(new[] { 1, 4, 7, 7 }, new[] { 4, 1, 3, 3 }, 4)]   // depthwise
    [InlineData(new[] { 1, 4, 7, 7 }, new[] { 6, 2, 3, 3 }, 2)]   // grouped: the lowered path
    public void Conv_then_relu_is_fused_and_matches_onnx_runtime(int[] inputShape, int[] weightShape, int group)
    {
        var random = new Random(6);
        float[] x = Enumerable.Range(0, inputShape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] w = Enumerable.Range(0, weightShape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] b = Enumerable.Range(0, weightShape[0]).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("X", inputShape.Select(d => (long)d).ToArray()));
        graph.Output.Add(new ValueInfoProto { Name = "Y", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        graph.Initializer.Add(Floats("W", weightShape.Select(d => (long)d).ToArray(), w));
        graph.Initializer.Add(Floats("B", [weightShape[0]], b));
        var conv = new NodeProto { OpType = "Conv", Name = "conv", Input = { "X", "W", "B" }, Output = { "c" } };
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1, 1, 1 } });
        conv.Attribute.Add(new AttributeProto { Name = "group", Type = AttributeProto.Types.AttributeType.Int, I = group });
        graph.Node.AddRange([conv, new NodeProto { OpType = "Relu", Name = "relu", Input = { "c" }, Output = { "Y" } }]);
        var proto = new ModelProto { IrVersion = 8, Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        byte[] model = proto.ToByteArray();

        using var ours = ModelSession.Load(model, "conv_relu.onnx", new SessionOptions { Threads = 2 });
        Assert.Equal(["'conv' (Conv)"], ours.PlannedNodes);
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, inputShape) })["Y"].ToArray<float>();

        float[] expected = OnnxRuntimeY(model, ("X", x, inputShape));
        Assert.Equal(expected.Length, mine.Length);
        Assert.Contains(mine, v => v == 0f); // the Relu did act
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {mine[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData(new[] { 1, 4, 20, 22 }, new[] { 6, 4, 3, 3 }, 1, 1, new[] { 1, 6, 20, 22 }, true)]  // Winograd
    [InlineData(new[] { 2, 3, 9, 11 }, new[] { 8, 3, 3, 3 }, 1, 2, new[] { 2, 8, 5, 6 }, true)]    // patches by pixels
    [InlineData(new[] { 1, 3, 9, 11 }, new[] { 8, 3, 3, 3 }, 1, 1, new[] { 1, 8, 9, 11 }, false)]  // no Relu after the Add
    [InlineData(new[] { 1, 4, 7, 7 }, new[] { 4, 1, 3, 3 }, 4, 1, new[] { 1, 4, 7, 7 }, true)]     // depthwise
    [InlineData(new[] { 1, 4, 7, 7 }, new[] { 6, 2, 3, 3 }, 2, 1, new[] { 1, 6, 7, 7 }, true)]     // grouped: the lowered path
    [InlineData(new[] { 1, 4, 20, 22 }, new[] { 6, 4, 3, 3 }, 1, 1, new[] { 6, 1, 1 }, true)]      // a residual that broadcasts
    public void Conv_then_add_then_relu_is_fused_and_matches_onnx_runtime(int[] inputShape, int[] weightShape, int group, int stride, int[] residualShape, bool relu)
    {
        var random = new Random(8);
        float[] Values(int[] shape) => Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] x = Values(inputShape), w = Values(weightShape), b = Values([weightShape[0]]), r = Values(residualShape);
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("X", inputShape.Select(d => (long)d).ToArray()));
        graph.Input.Add(Value("R", residualShape.Select(d => (long)d).ToArray()));
        graph.Output.Add(new ValueInfoProto { Name = "Y", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        graph.Initializer.Add(Floats("W", weightShape.Select(d => (long)d).ToArray(), w));
        graph.Initializer.Add(Floats("B", [weightShape[0]], b));
        var conv = new NodeProto { OpType = "Conv", Name = "conv", Input = { "X", "W", "B" }, Output = { "c" } };
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1, 1, 1 } });
        conv.Attribute.Add(new AttributeProto { Name = "strides", Type = AttributeProto.Types.AttributeType.Ints, Ints = { stride, stride } });
        conv.Attribute.Add(new AttributeProto { Name = "group", Type = AttributeProto.Types.AttributeType.Int, I = group });
        graph.Node.AddRange([conv, new NodeProto { OpType = "Add", Name = "add", Input = { "R", "c" }, Output = { relu ? "s" : "Y" } }]);
        if (relu) graph.Node.Add(new NodeProto { OpType = "Relu", Name = "relu", Input = { "s" }, Output = { "Y" } });
        var proto = new ModelProto { IrVersion = 8, Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        byte[] model = proto.ToByteArray();

        float[] expected = OnnxRuntimeY(model, ("X", x, inputShape), ("R", r, residualShape));
        foreach (int threads in new[] { 1, 2 })
        {
            using var ours = ModelSession.Load(model, "conv_add_relu.onnx", new SessionOptions { Threads = threads });
            Assert.Equal(["'conv' (Conv)"], ours.PlannedNodes);
            float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, inputShape), ["R"] = Tensor.Create(r, residualShape) })["Y"].ToArray<float>();
            Assert.Equal(expected.Length, mine.Length);
            Assert.Equal(relu, mine.Contains(0f)); // the Relu acted, or there was none
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {mine[i]} vs {expected[i]}");
        }
    }

    /// <summary>Y = gelu(layernorm(X)) in elementary ops with Constant-node scalars, as PyTorch exports BERT (opset 14).</summary>
    private static ModelProto LayerNormGeluModel(int width, float[] gamma, float[] beta, float divisor, bool halfFirst)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("X", 2, -1, width));
        graph.Output.Add(Value("Y", 2, -1, width));
        graph.Initializer.Add(Floats("gamma", [width], gamma));
        graph.Initializer.Add(Floats("beta", [width], beta));
        void Node(string op, string output, params string[] inputs)
        {
            var node = new NodeProto { OpType = op, Name = output };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            if (op == "ReduceMean") node.Attribute.Add(new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints, Ints = { -1 } });
            graph.Node.Add(node);
        }
        void Constant(string output, float value)
        {
            var node = new NodeProto { OpType = "Constant", Name = output };
            node.Output.Add(output);
            node.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = Floats("", [], [value]) });
            graph.Node.Add(node);
        }
        Node("ReduceMean", "mean", "X");
        Node("Sub", "centered", "X", "mean");
        Constant("two", 2f);
        Node("Pow", "squared", "centered", "two");
        Node("ReduceMean", "variance", "squared");
        Constant("eps", 1e-12f);
        Node("Add", "variance_eps", "variance", "eps");
        Node("Sqrt", "deviation", "variance_eps");
        Node("Div", "normalized", "centered", "deviation");
        Node("Mul", "scaled", "normalized", "gamma");
        Node("Add", "h", "scaled", "beta");
        Constant("divisor", divisor);
        Node("Div", "h_scaled", "h", "divisor");
        Node("Erf", "erf", "h_scaled");
        Constant("one", 1f);
        Node("Add", "erf_1", "erf", "one");
        Constant("half", 0.5f);
        if (halfFirst)
        {
            Node("Mul", "h_half", "half", "h");
            Node("Mul", "Y", "h_half", "erf_1");
        }
        else
        {
            Node("Mul", "h_erf", "h", "erf_1");
            Node("Mul", "Y", "h_erf", "half");
        }
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 14 });
        return model;
    }

    /// <summary>
    /// Output Y of <paramref name="model"/> as ONNX Runtime computes it, with its graph optimizations off so that it runs the
    /// written-out graph (the oracle for our fusions).
    /// </summary>
    private static float[] OnnxRuntimeY(byte[] model, params (string Name, float[] Values, int[] Shape)[] inputs)
    {
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var ort = new InferenceSession(model, options);
        var values = inputs.Select(i => OrtValue.CreateTensorValueFromMemory(i.Values, i.Shape.Select(d => (long)d).ToArray())).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = ort.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, ["Y"]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    private static ModelProto MatMulAddModel(int k, int n, float[] w, float[] bias)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("X", 2, -1, k));
        graph.Output.Add(Value("Y", 2, -1, n));
        graph.Initializer.Add(Floats("W", [k, n], w));
        graph.Initializer.Add(Floats("B", [n], bias));
        var mm = new NodeProto { OpType = "MatMul", Name = "mm" };
        mm.Input.AddRange(["X", "W"]);
        mm.Output.Add("XW");
        var add = new NodeProto { OpType = "Add", Name = "add" };
        add.Input.AddRange(["B", "XW"]);
        add.Output.Add("Y");
        graph.Node.AddRange([mm, add]);
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "rows" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    private static TensorProto Floats(string name, long[] dims, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }
}
