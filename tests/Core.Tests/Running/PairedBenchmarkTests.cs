using Quantize.Core.Running;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Tests.Running;

/// <summary>PairedBenchmark: both sessions timed the same number of times; the speedup is the ratio of the medians.</summary>
public class PairedBenchmarkTests
{
    [Fact]
    public void Times_both_and_reports_the_ratio_of_the_medians()
    {
        using var small = ModelSession.Create(Model(16));
        using var large = ModelSession.Create(Model(256));
        var smallInputs = InputData.Generate(small.Inputs);
        var largeInputs = InputData.Generate(large.Inputs);
        var result = PairedBenchmark.Run(small, smallInputs, large, largeInputs, warmup: 1, iterations: 5);
        Assert.Equal(5, result.Model.Iterations);
        Assert.Equal(5, result.Baseline.Iterations);
        Assert.True(result.Model.MedianMilliseconds > 0 && result.Baseline.MedianMilliseconds > 0);
        Assert.True(result.Model.P90Milliseconds >= result.Model.MedianMilliseconds);
        Assert.Equal(result.Baseline.MedianMilliseconds / result.Model.MedianMilliseconds, result.Speedup, 12);
    }

    private static OnnxModel Model(int size)
    {
        var graph = new GraphProto { Name = "square" };
        graph.Input.Add(Value("X", 1, size));
        graph.Output.Add(Value("Y", 1, size));
        var weights = new TensorProto { Name = "W", DataType = 1 };
        weights.Dims.AddRange([size, size]);
        weights.FloatData.AddRange(Enumerable.Range(0, size * size).Select(i => (i % 7) / 7f));
        graph.Initializer.Add(weights);
        var node = new NodeProto { OpType = "MatMul", Name = "mm" };
        node.Input.AddRange(["X", "W"]);
        node.Output.Add("Y");
        graph.Node.Add(node);
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return new OnnxModel(model, "square.onnx", ".");
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }
}
