using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Quantize.Tests;

namespace Quantize.Build.Tasks.Tests;

/// <summary>Packs Quantize.Build once for the end-to-end tests (a few minutes in all: the checks share few builds).</summary>
public sealed class PackageFixture : IDisposable
{
    private readonly Lazy<BuildHarness> _harness = new(() => new BuildHarness());

    internal BuildHarness Harness => _harness.Value;

    public void Dispose()
    {
        if (_harness.IsValueCreated) _harness.Value.Dispose();
    }
}

/// <summary>The end-to-end tests share one packed package and run one at a time (the machine has few cores).</summary>
[CollectionDefinition(Name)]
public sealed class BuildCollection : ICollectionFixture<PackageFixture>
{
    public const string Name = "Builds from the packed package";
}

/// <summary>
/// The package as users get it: packed to a local feed, referenced by generated projects, built with real
/// <c>dotnet build</c>/<c>publish</c>/<c>clean</c> processes with their own NuGet and cache folders.
/// </summary>
[Collection(BuildCollection.Name)]
public class EndToEndTests(PackageFixture fixture)
{
    private BuildHarness Harness => fixture.Harness;

    private const string SkippedLine = "Skipping target \"_QuantizeModel_SelectStale\" because all output files are up-to-date";

    [Fact]
    public void Build_is_incremental_per_item_publishes_and_cleans()
    {
        string project = Harness.CreateProject("App", """
            <QuantizeModel Include="Models/*.onnx" Exclude="Models/b.onnx" />
            <QuantizeModel Include="Models/b.onnx" Mode="static" Calibration="calibration" CalibrationMethod="minmax" />
            """);
        File.WriteAllBytes(Path.Combine(Directory.CreateDirectory(Path.Combine(project, "Models")).FullName, "a.onnx"), TestModels.Mlp(1));
        File.WriteAllBytes(Path.Combine(project, "Models", "b.onnx"), TestModels.Mlp(2));
        for (int i = 0; i < 4; i++) TestModels.WriteSample(Path.Combine(project, "calibration", $"s{i}"), 100 + i);

        // First build: both quantized, one line each, copied to bin/.
        var first = Harness.Run(project, "build", "-v:n", "-tl:off").Succeeded();
        Assert.Contains("Models/a.onnx -> Models/a.dynamic.onnx (dynamic): ", first.Output);
        Assert.Contains("Models/b.onnx -> Models/b.static.onnx (static): ", first.Output);
        // With calibration data the line gives the accuracy measured on it.
        Assert.Matches(@"Models/b\.onnx -> Models/b\.static\.onnx \(static\): [0-9.]+ KiB -> [0-9.]+ KiB \(\d+ ?%\), cosine [01]\.\d{4}, [0-9.]+ s", first.Output);
        Assert.DoesNotContain("(cached)", first.Output);
        Assert.Contains("message QNT005: Models/a.onnx: left float: 1 MatMul", first.Output);
        string bin = Path.Combine(project, "bin", "Debug", "net10.0", "Models");
        string obj = Path.Combine(project, "obj", "Debug", "net10.0", "quantize", "Models");
        AssertRunsLikeFloat(Path.Combine(project, "Models", "a.onnx"), Path.Combine(bin, "a.dynamic.onnx"), 0.99);
        AssertRunsLikeFloat(Path.Combine(project, "Models", "b.onnx"), Path.Combine(bin, "b.static.onnx"), 0.98);

        // Second build: the target is skipped for each item and no tool process starts.
        var second = Harness.Run(project, "build", "-v:d", "-tl:off").Succeeded();
        Assert.Equal(2, Count(second.Output, SkippedLine));
        Assert.DoesNotContain("msbuild-batch", second.Output);

        // Changing one item's metadata re-quantizes that item only; publish carries both models.
        var aTime = File.GetLastWriteTimeUtc(Path.Combine(obj, "a.dynamic.onnx"));
        string csproj = Path.Combine(project, "App.csproj");
        File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("CalibrationMethod=\"minmax\"", "CalibrationMethod=\"percentile\""));
        string publish = Path.Combine(project, "pub");
        var third = Harness.Run(project, "publish", "-c", "Debug", "-o", publish, "-v:d", "-tl:off").Succeeded();
        Assert.Equal(1, Count(third.Output, SkippedLine));
        var request = JsonNode.Parse(File.ReadAllText(Path.Combine(obj, "..", "request.json")))!;
        Assert.Single(request["items"]!.AsArray());
        Assert.EndsWith("b.onnx", (string)request["items"]![0]!["model"]!);
        Assert.Equal(aTime, File.GetLastWriteTimeUtc(Path.Combine(obj, "a.dynamic.onnx")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(obj, "a.dynamic.onnx")), File.ReadAllBytes(Path.Combine(publish, "Models", "a.dynamic.onnx")));
        AssertRunsLikeFloat(Path.Combine(project, "Models", "b.onnx"), Path.Combine(publish, "Models", "b.static.onnx"), 0.98);

        // Touching a model re-runs that item only (its result comes from the cache: same model, same options).
        File.SetLastWriteTimeUtc(Path.Combine(project, "Models", "a.onnx"), DateTime.UtcNow);
        var fourth = Harness.Run(project, "build", "-v:n", "-tl:off").Succeeded();
        Assert.Contains("Models/a.onnx -> Models/a.dynamic.onnx (dynamic): ", fourth.Output);
        Assert.Contains("(cached)", fourth.Output);
        Assert.DoesNotContain("Models/b.onnx -> ", fourth.Output);

        // Clean removes what the build wrote.
        Harness.Run(project, "clean", "-tl:off").Succeeded();
        Assert.Empty(Directory.Exists(obj) ? Directory.GetFiles(obj) : []);
        Assert.False(File.Exists(Path.Combine(bin, "a.dynamic.onnx")));
        Assert.False(File.Exists(Path.Combine(bin, "b.static.onnx")));
    }

    [Fact]
    public void A_clean_checkout_takes_the_result_from_the_cache_and_can_embed_it()
    {
        byte[] model = TestModels.Mlp(11);
        string first = Harness.CreateProject("CacheFirst", """<QuantizeModel Include="m.onnx" Mode="weights" />""");
        File.WriteAllBytes(Path.Combine(first, "m.onnx"), model);
        // A design-time build (the IDE's) quantizes nothing.
        var designTime = Harness.Run(first, "build", "-p:DesignTimeBuild=true", "-v:n", "-tl:off").Succeeded();
        Assert.DoesNotContain("msbuild-batch", designTime.Output);
        Assert.False(Directory.Exists(Path.Combine(first, "obj", "Debug", "net10.0", "quantize")));
        var made = Harness.Run(first, "build", "-v:n", "-tl:off").Succeeded();
        Assert.Contains("m.onnx -> m.weights.onnx (weights): ", made.Output);
        Assert.DoesNotContain("(cached)", made.Output);
        byte[] reference = File.ReadAllBytes(Path.Combine(first, "bin", "Debug", "net10.0", "m.weights.onnx"));

        // Deleting obj/ and bin/: the build takes the result from the cache, byte for byte.
        Directory.Delete(Path.Combine(first, "obj"), recursive: true);
        Directory.Delete(Path.Combine(first, "bin"), recursive: true);
        var again = Harness.Run(first, "build", "-v:n", "-tl:off").Succeeded();
        Assert.Contains("m.onnx -> m.weights.onnx (weights): ", again.Output);
        Assert.Contains("(cached)", again.Output);
        Assert.Equal(reference, File.ReadAllBytes(Path.Combine(first, "bin", "Debug", "net10.0", "m.weights.onnx")));

        // Another project with the same model and options: a cache hit, embedded under its logical name.
        string second = Harness.CreateProject("CacheSecond", """<QuantizeModel Include="Data/m.onnx" Mode="weights" EmbedAsResource="true" LogicalName="Quantized.m.onnx" />""");
        Directory.CreateDirectory(Path.Combine(second, "Data"));
        File.WriteAllBytes(Path.Combine(second, "Data", "m.onnx"), model);
        var embedded = Harness.Run(second, "build", "-v:n", "-tl:off").Succeeded();
        Assert.Contains("(cached)", embedded.Output);
        string assembly = Path.Combine(second, "bin", "Debug", "net10.0", "CacheSecond.dll");
        Assert.Equal(reference, RealModels.ReadManifestResource(assembly, "Quantized.m.onnx"));
        Assert.False(File.Exists(Path.Combine(second, "bin", "Debug", "net10.0", "Data", "m.weights.onnx")));

        // Without QuantizeCacheDirectory the cache is the user-level folder (local application data).
        string third = Harness.CreateProject("CacheDefault", """<QuantizeModel Include="m.onnx" Mode="weights" />""", "<QuantizeCacheDirectory></QuantizeCacheDirectory>");
        File.WriteAllBytes(Path.Combine(third, "m.onnx"), model);
        var userLevel = Harness.Run(third, "build", "-v:n", "-tl:off").Succeeded();
        Assert.DoesNotContain("(cached)", userLevel.Output);
        var entries = Directory.GetFiles(Path.Combine(Harness.Root, "user-data", "Quantize.Build", "cache"), "*.model", SearchOption.AllDirectories);
        Assert.Equal(reference, File.ReadAllBytes(Assert.Single(entries)));
    }

    [Fact]
    public void Diagnostics_have_codes_point_at_the_project_and_name_the_model()
    {
        string missing = Harness.CreateProject("Missing", """<QuantizeModel Include="Models/absent.onnx" />""");
        var noModel = Harness.Run(missing, "build", "-tl:off");
        Assert.NotEqual(0, noModel.ExitCode);
        Assert.Contains(noModel.Output.Split('\n'), line => line.Contains("Missing.csproj") && line.Contains("error QNT001") && line.Contains("Models/absent.onnx"));

        string bad = Harness.CreateProject("Bad", """
            <QuantizeModel Include="m.onnx" Mode="static" />
            <QuantizeModel Include="broken.onnx" />
            <QuantizeModel Include="m.onnx" OutputName="m.odd.onnx" BlockSize="lots" />
            <QuantizeModel Include="m.onnx" OutputName="m.exact.onnx" MinimumSize="16" AccuracyTarget="1" Calibration="calibration" />
            """);
        File.WriteAllBytes(Path.Combine(bad, "m.onnx"), TestModels.Mlp(3));
        for (int i = 0; i < 2; i++) TestModels.WriteSample(Path.Combine(bad, "calibration", $"s{i}"), i);
        File.WriteAllBytes(Path.Combine(bad, "broken.onnx"), [0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
        var errors = Harness.Run(bad, "build", "-tl:off");
        Assert.NotEqual(0, errors.ExitCode);
        var lines = errors.Output.Split('\n');
        Assert.Contains(lines, line => line.Contains("Bad.csproj") && line.Contains("error QNT003") && line.Contains("m.onnx") && line.Contains("Calibration"));
        Assert.Contains(lines, line => line.Contains("Bad.csproj") && line.Contains("error QNT002") && line.Contains("broken.onnx"));
        Assert.Contains(lines, line => line.Contains("Bad.csproj") && line.Contains("error QNT006") && line.Contains("BlockSize"));
        // An exact accuracy target cannot be met by int8 weights: an error that gives the report, and no output (the next build tries again).
        string report = Path.Combine(bad, "obj", "Debug", "net10.0", "quantize", "m.exact.onnx.report.json");
        Assert.Contains(lines, line => line.Contains("Bad.csproj") && line.Contains("error QNT004") && line.Contains(report));
        Assert.False(JsonNode.Parse(File.ReadAllText(report))!["target"]!["met"]!.GetValue<bool>());
        Assert.False(File.Exists(Path.Combine(bad, "obj", "Debug", "net10.0", "quantize", "m.exact.onnx")));
        Assert.DoesNotContain(lines, line => line.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        Assert.DoesNotContain("MSB6006", errors.Output);
        Assert.False(Directory.Exists(Path.Combine(bad, "bin", "Debug", "net10.0")) && Directory.GetFiles(Path.Combine(bad, "bin", "Debug", "net10.0"), "*.onnx").Length > 0);
    }

    [Fact]
    public void Referencing_an_older_Quantize_Kernels_than_the_models_need_warns_QNT010()
    {
        // Any package called Quantize.Kernels at 0.0.1 will do: the warning reads the reference, and the app is never run.
        string fake = Path.Combine(Harness.Root, "OldKernels");
        Directory.CreateDirectory(fake);
        File.WriteAllText(Path.Combine(fake, "OldKernels.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <PackageId>Quantize.Kernels</PackageId>
                <Version>0.0.1</Version>
              </PropertyGroup>
            </Project>
            """);
        Harness.Run(fake, "pack", "-o", Harness.Feed).Succeeded();
        string project = Harness.CreateProject("OldRuntime", """
            <PackageReference Include="Quantize.Kernels" Version="0.0.1" />
            <QuantizeModel Include="m.onnx" MinimumSize="16" />
            """);
        File.WriteAllBytes(Path.Combine(project, "m.onnx"), TestModels.Mlp(9));
        var build = Harness.Run(project, "build", "-tl:off");
        Assert.Equal(0, build.ExitCode);
        Assert.Contains(build.Output.Split('\n'), line => line.Contains("OldRuntime.csproj") && line.Contains("warning QNT010") && line.Contains("0.0.1")
            && line.Contains(Quantize.Kernels.Runtime.RuntimeVersion.Current.ToNormalizedString()));
    }

    private static int Count(string text, string part)
    {
        int count = 0;
        for (int at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    /// <summary>ONNX Runtime runs the quantized model, and its output is close to the float model's.</summary>
    internal static void AssertRunsLikeFloat(string floatModel, string quantizedModel, double minimumCosine)
    {
        Assert.True(File.Exists(quantizedModel), $"{quantizedModel} is missing");
        var random = new Random(42);
        float[] x = Enumerable.Range(0, 64).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        float[] Run(string path)
        {
            using var session = new InferenceSession(path);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", new DenseTensor<float>(x, [1, 64]))]);
            return results.Single().AsEnumerable<float>().ToArray();
        }
        float[] expected = Run(floatModel), actual = Run(quantizedModel);
        double dot = 0, ee = 0, aa = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            dot += expected[i] * actual[i];
            ee += expected[i] * expected[i];
            aa += actual[i] * actual[i];
        }
        double cosine = dot / Math.Sqrt(ee * aa);
        Assert.True(cosine >= minimumCosine, $"{Path.GetFileName(quantizedModel)}: cosine {cosine} to the float model is below {minimumCosine}");
    }
}
