using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>The real frozen graphs of ../shared/tf-graphs on our runtime.</summary>
public sealed class TensorFlowGraphTests(ITestOutputHelper output)
{
    /// <summary>nnstreamer's digit: uint8 pixels mapped to [-1, 1] as its own test pipeline does.</summary>
    internal static Tensor NnstreamerDigit()
    {
        byte[] pixels = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist_digit9.raw"));
        return Tensor.Create(pixels.Select(p => (p - 127.5f) / 127.5f).ToArray(), 1, 784);
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    [Fact]
    public void MissingOpFailsAtLoadNamingNodeAndOp()
    {
        var error = Assert.Throws<UnsupportedModelException>(() => ModelSession.Load(SharedData.Require("tf-graphs/kws_ds_cnn_s.pb")));
        Assert.Contains("'decoded_sample_data' (DecodeWav)", error.Message);
        Assert.Contains("GraphDefInputs", error.Message);
    }

    [Fact]
    public void NnstreamerMnistReadsNine()
    {
        using var session = ModelSession.Load(SharedData.Require("tf-graphs/nnstreamer_mnist.pb"));
        Assert.Equal("input", Assert.Single(session.Inputs).Name);
        Assert.Equal("softmax", Assert.Single(session.Outputs).Name);
        var probabilities = session.Run(new Dictionary<string, Tensor> { ["input:0"] = NnstreamerDigit() }, ["softmax:0"])["softmax:0"];
        Assert.Equal([1, 10], probabilities.Shape.ToArray());
        Assert.Equal(9, ArgMax(probabilities.AsSpan<float>()));
    }

    /// <summary>The float MLPs against a float64 evaluation of their own constants (MatMul, bias Add/BiasAdd, Relu).</summary>
    [Theory]
    [InlineData("tf-graphs/tf2onnx_fc_layers.pb", "X", "output")]
    [InlineData("tf-graphs/utensor_simple_mnist.pb", "x", "OuputLayer/logits")]
    [InlineData("tf-graphs/nnstreamer_mnist.pb", "input", "add")]
    public void MlpMatchesFloat64Reference(string graph, string input, string logits)
    {
        var model = GraphDefModel.Load(SharedData.Require(graph));
        var random = new Random(7);
        var x = Enumerable.Range(0, 2 * 784).Select(_ => random.NextSingle()).ToArray();
        using var session = ModelSession.Create(model, new SessionOptions { Threads = 1 });
        var actual = session.Run(new Dictionary<string, Tensor> { [input] = Tensor.Create(x, 2, 784) }, [logits])[logits].ToArray<float>();
        var expected = MlpReference.Evaluate(model, logits, x.Select(v => (double)v).ToArray(), 2);
        double scale = expected.Max(Math.Abs);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        output.WriteLine($"{graph}: max abs error {worst:G3} (largest |logit| {scale:G3})");
        Assert.True(worst <= 1e-5 * scale, $"{worst} > 1e-5 x {scale}");
    }

    /// <summary>Results do not depend on the thread count (the runtime's contract), for the conv net on both kernels.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ThreadCountDoesNotChangeResults(bool integerKernels)
    {
        var model = GraphDefModel.Load(SharedData.Require("tf-graphs/utensor_test_cnn_float.pb"));
        var random = new Random(5);
        var feeds = new Dictionary<string, Tensor>
        {
            ["img_batch"] = Tensor.Create(Enumerable.Range(0, 3 * 32 * 32 * 3).Select(_ => random.NextSingle()).ToArray(), 3, 32, 32, 3),
            ["keep_prob_1"] = Tensor.Create([1f]),
            ["keep_prob_2"] = Tensor.Create([1f]),
        };
        float[] Logits(int threads)
        {
            using var session = ModelSession.Create(model, new SessionOptions { Threads = threads, UseIntegerKernels = integerKernels });
            return session.Run(feeds, ["fc_3/activation"])["fc_3/activation"].ToArray<float>();
        }
        Assert.Equal(Logits(1), Logits(2));
    }

    public static TheoryData<string> AllGraphs() =>
    [
        "kws_ds_cnn_s.pb", "nnstreamer_mnist.pb", "tf2onnx_fc_layers.pb", "tf2onnx_lstm.pb", "utensor_quant_mnist.pb",
        "utensor_simple_mnist.pb", "utensor_test_cnn_float.pb", "utensor_test_cnn_quant.pb",
    ];

    /// <summary>Each graph runs on its documented inputs (keep probabilities 1; the keyword spotter fed after its audio front end) and gives the documented output.</summary>
    [Theory]
    [MemberData(nameof(AllGraphs))]
    public void GraphRuns(string graph)
    {
        var model = GraphDefModel.Load(SharedData.Require("tf-graphs/" + graph));
        var random = new Random(11);
        Tensor Uniform(params int[] shape) => Tensor.Create(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextSingle()).ToArray(), shape);
        var feeds = new Dictionary<string, Tensor>();
        string fetch;
        switch (graph)
        {
            case "kws_ds_cnn_s.pb":
                feeds["Mfcc:0"] = Tensor.Create(Enumerable.Range(0, 490).Select(_ => random.NextSingle() * 20 - 10).ToArray(), 1, 49, 10);
                fetch = "labels_softmax";
                break;
            case "utensor_test_cnn_float.pb":
                feeds["img_batch"] = Uniform(2, 32, 32, 3);
                feeds["keep_prob_1"] = Tensor.Create([1f]);
                feeds["keep_prob_2"] = Tensor.Create([1f]);
                fetch = "pred_label";
                break;
            case "utensor_test_cnn_quant.pb":
                feeds["img_batch"] = Uniform(2, 32, 32, 3);
                feeds["keep_prob"] = Tensor.Create([1f]);
                fetch = "pred_label";
                break;
            case "tf2onnx_lstm.pb":
                feeds["X"] = Uniform(2, 784);
                feeds["keep_prob"] = Tensor.Create([1f]);
                fetch = "output";
                break;
            default:
                feeds[ModelSession.Create(model).Inputs.Single().Name] = Uniform(2, 784);
                fetch = graph switch { "nnstreamer_mnist.pb" => "softmax", "tf2onnx_fc_layers.pb" => "output", _ => "y_pred" };
                break;
        }
        using var session = ModelSession.Create(model, new SessionOptions { Threads = 1, GraphDefInputs = graph == "kws_ds_cnn_s.pb" ? ["Mfcc:0"] : null });
        var first = session.Run(feeds, [fetch])[fetch];
        var again = session.Run(feeds, [fetch])[fetch];
        output.WriteLine($"{graph}: {fetch} = {first}");
        Assert.Equal(2 - (graph == "kws_ds_cnn_s.pb" ? 1 : 0), first.Shape[0]);
        if (first.ElementType == TensorElementType.Float32)
        {
            Assert.All(first.ToArray<float>(), v => Assert.True(float.IsFinite(v)));
            Assert.Equal(first.ToArray<float>(), again.ToArray<float>());
        }
        else
        {
            Assert.Equal(TensorElementType.Int64, first.ElementType);
            Assert.All(first.ToArray<long>(), v => Assert.InRange(v, 0, 9));
            Assert.Equal(first.ToArray<long>(), again.ToArray<long>());
        }
        if (fetch is "labels_softmax" or "softmax")
        {
            var p = first.ToArray<float>();
            Assert.Equal(1.0, p.Take(first.Shape[1]).Sum(v => (double)v), 1e-5);
        }
    }
}

/// <summary>uTensor's MNIST MLPs (float, and eightbit with other weights) read nnstreamer's digit, pixels scaled to [0, 1] as TensorFlow's MNIST tutorial feeds them.</summary>
public sealed class UtensorMnistDigitTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("tf-graphs/utensor_simple_mnist.pb")]
    [InlineData("tf-graphs/utensor_quant_mnist.pb")]
    public void ReadsNine(string graph)
    {
        byte[] pixels = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist_digit9.raw"));
        var digit = Tensor.Create(pixels.Select(p => p / 255f).ToArray(), 1, 784);
        using var session = ModelSession.Load(SharedData.Require(graph));
        var results = session.Run(new Dictionary<string, Tensor> { ["x"] = digit }, ["y_pred", "OuputLayer/logits"]);
        output.WriteLine($"{graph}: logits {string.Join(", ", results["OuputLayer/logits"].ToArray<float>().Select(v => v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}");
        Assert.Equal(9L, Assert.Single(results["y_pred"].ToArray<long>()));
    }
}
